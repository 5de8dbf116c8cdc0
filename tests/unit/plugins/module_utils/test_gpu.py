"""Parsers and probes of module_utils/gpu.py, table-driven."""

from __future__ import annotations

import pytest

from ansible_collections.researchops.mlops.plugins.module_utils import gpu as gpulib

T4_LINE = "0, Tesla T4, GPU-5c3a9e1f-7b2d-4e8a-9f06-1d2c3b4a5e6f, 15360, 535.183.01, [N/A], 00000000:00:04.0"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", []),
        ("\n\n", []),
        (
            T4_LINE + "\n",
            [
                {
                    "index": 0,
                    "name": "Tesla T4",
                    "uuid": "GPU-5c3a9e1f-7b2d-4e8a-9f06-1d2c3b4a5e6f",
                    "memory_mib": 15360,
                    "driver_version": "535.183.01",
                    "mig_mode": None,
                    "pci_bus_id": "00000000:00:04.0",
                }
            ],
        ),
    ],
    ids=["empty", "blank-lines", "t4"],
)
def test_parse_query_csv(text, expected):
    assert gpulib.parse_query_csv(text) == expected


def test_parse_query_csv_sorts_by_index_and_reads_mig_and_na_memory():
    text = (
        "1, NVIDIA A100-SXM4-40GB, GPU-b, [N/A], 535.129.03, Disabled, 00000000:0F:00.0\n"
        "0, NVIDIA A100-SXM4-40GB, GPU-a, 40960, 535.129.03, Enabled, 00000000:07:00.0\n"
    )
    gpus = gpulib.parse_query_csv(text)
    assert [g["index"] for g in gpus] == [0, 1]
    assert [g["mig_mode"] for g in gpus] == ["Enabled", "Disabled"]
    assert [g["memory_mib"] for g in gpus] == [40960, None]


@pytest.mark.parametrize(
    "text, message",
    [
        ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", "expected 7"),
        ('Field "mig.mode.current" is not a valid field to query.', "expected 7"),
        ("0, Tesla T4, GPU-x, 15360, 535.183.01, [N/A]", "got 6"),
        ("0, Tesla T4, GPU-x, 15 GiB, 535.183.01, [N/A], 00000000:00:04.0", "memory.total is not a number"),
        ("zero, Tesla T4, GPU-x, 15360, 535.183.01, [N/A], 00000000:00:04.0", "index is not a number"),
    ],
    ids=["driver-error", "old-driver", "short-row", "units", "bad-index"],
)
def test_parse_query_csv_rejects(text, message):
    with pytest.raises(gpulib.GpuParseError, match=message):
        gpulib.parse_query_csv(text)


@pytest.mark.parametrize(
    "raw, expected",
    [("Enabled", "Enabled"), ("disabled", "Disabled"), ("[N/A]", None), ("N/A", None), ("", None), (None, None)],
)
def test_normalize_mig_mode(raw, expected):
    assert gpulib.normalize_mig_mode(raw) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("| NVIDIA-SMI 535.129.03             Driver Version: 535.129.03   CUDA Version: 12.2     |", "12.2"),
        (
            "NVIDIA-SMI version  : 550.90.07\nNVML version        : 550.90\nDRIVER version      : 550.90.07\nCUDA Version        : 12.4\n",
            "12.4",
        ),
        ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", None),
        (None, None),
    ],
    ids=["banner", "version-flag", "failure", "none"],
)
def test_parse_cuda_version(text, expected):
    assert gpulib.parse_cuda_version(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.129.03  Thu Oct 19 18:56:32 UTC 2023\n", "535.129.03"),
        (
            "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.90.07  Release Build  (dvs-builder@U16)\n",
            "550.90.07",
        ),
        ("NVRM version: NVIDIA UNIX aarch64 Kernel Module  550.54.15  Tue Mar  5 22:15:33 UTC 2024\n", "550.54.15"),
        ("", None),
        (None, None),
    ],
    ids=["proprietary", "open", "aarch64", "empty", "absent"],
)
def test_parse_proc_driver_version(text, expected):
    assert gpulib.parse_proc_driver_version(text) == expected


def _device(root, bus_id, vendor, pci_class, device="0x0000"):
    path = root / bus_id
    path.mkdir()
    (path / "vendor").write_text(vendor + "\n")
    (path / "class").write_text(pci_class + "\n")
    (path / "device").write_text(device + "\n")


def test_scan_sysfs_keeps_only_nvidia_display_and_3d_controllers(tmp_path):
    _device(tmp_path, "0000:2d:00.0", "0x10de", "0x030000", "0x24B0")  # VGA
    _device(tmp_path, "0000:2d:00.1", "0x10de", "0x040300")  # HDMI audio
    _device(tmp_path, "0000:05:00.0", "0x10de", "0x068000")  # NVSwitch
    _device(tmp_path, "0000:17:00.0", "0x10de", "0x030200", "0x2330")  # 3D controller
    _device(tmp_path, "0000:00:02.0", "0x8086", "0x030000")  # Intel iGPU
    (tmp_path / "0000:99:00.0").mkdir()  # device without attributes
    assert gpulib.scan_sysfs(str(tmp_path)) == [
        {"pci_bus_id": "0000:17:00.0", "device_id": "0x2330", "pci_class": "0x030200"},
        {"pci_bus_id": "0000:2d:00.0", "device_id": "0x24b0", "pci_class": "0x030000"},
    ]


def test_scan_sysfs_absent_path(tmp_path):
    assert gpulib.scan_sysfs(str(tmp_path / "missing")) == []


@pytest.mark.parametrize(
    "config, expected",
    [
        (
            '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes."nvidia"]\n  runtime_type = "io.containerd.runc.v2"\n',
            True,
        ),
        ('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\n', True),
        ("[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.'nvidia']\n", True),
        ("[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.'nvidia-cdi']\n", False),
        ('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]\n', False),
        ('# [plugins."io.containerd.grpc.v1.cri".containerd.runtimes."nvidia"]\n', False),
        ("", False),
        (None, False),
    ],
    ids=["v2-quoted", "v2-bare", "v3", "other-runtime", "runc-only", "commented", "empty", "absent"],
)
def test_containerd_has_nvidia_runtime(config, expected):
    assert gpulib.containerd_has_nvidia_runtime(config) is expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}}', True),
        ('{"default-runtime": "runc", "runtimes": {"crun": {"path": "/usr/bin/crun"}}}', False),
        ('{"log-driver": "json-file"}', False),
        ("  ", False),
        (None, False),
    ],
)
def test_docker_has_nvidia_runtime(text, expected):
    assert gpulib.docker_has_nvidia_runtime(text) is expected


@pytest.mark.parametrize("text", ['{"runtimes": ', "[]"], ids=["truncated", "not-an-object"])
def test_docker_has_nvidia_runtime_rejects(text):
    with pytest.raises(ValueError):
        gpulib.docker_has_nvidia_runtime(text)


def test_summarize_mixed_gpus_describes_the_first_and_lists_all():
    gpus = gpulib.parse_query_csv(
        "0, NVIDIA RTX A4000, GPU-a, 16376, 550.90.07, [N/A], 00000000:2D:00.0\n"
        "1, NVIDIA GeForce RTX 3090, GPU-b, 24576, 550.90.07, [N/A], 00000000:41:00.0\n"
    )
    fact = gpulib.summarize(gpus, "nvidia-smi", "550.90.07", "12.4")
    assert fact["product"] == "NVIDIA RTX A4000"
    assert fact["products"] == ["NVIDIA GeForce RTX 3090", "NVIDIA RTX A4000"]
    assert (fact["memory_mib"], fact["memory_total_mib"]) == (16376, 40952)


def test_summarize_without_gpus_is_source_none():
    fact = gpulib.summarize([], "nvidia-smi")
    assert (fact["count"], fact["source"], fact["product"], fact["memory_total_mib"]) == (0, "none", None, None)
