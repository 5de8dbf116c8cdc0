# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""NVIDIA GPU detection: parse nvidia-smi output, scan PCI sysfs, read the driver
version and the container-runtime configuration.

Pure functions only (no AnsibleModule), so the gpu_facts module stays thin and every
branch is testable against recorded outputs.
"""

from __future__ import annotations

import csv
import json
import os
import re

NVIDIA_PCI_VENDOR = "0x10de"
# PCI class codes (first 4 hex digits of the 24-bit class): 0x0300 VGA compatible
# controller, 0x0302 3D controller (datacenter GPUs). NVIDIA's HDMI audio (0x0403)
# and NVSwitch bridges (0x0680) share the vendor id and are not GPUs.
GPU_PCI_CLASSES = ("0x0300", "0x0302")

# Order matters: parse_query_csv() maps columns by position.
QUERY_FIELDS = (
    "index",
    "name",
    "uuid",
    "memory.total",
    "driver_version",
    "mig.mode.current",
    "pci.bus_id",
)
QUERY_ARGS = [
    "--query-gpu=" + ",".join(QUERY_FIELDS),
    "--format=csv,noheader,nounits",
]

# Values nvidia-smi prints for a field a device does not have.
_NOT_AVAILABLE = {"[n/a]", "n/a", "[not supported]", "not supported", "[unknown error]", ""}

_CUDA_RE = re.compile(r"CUDA Version\s*:\s*([0-9]+(?:\.[0-9]+)*)")
_NVRM_RE = re.compile(r"NVRM version:.*?\s([0-9]+(?:\.[0-9]+)+)\s")
# containerd 1.x (config version 2) and 2.x (version 3) spell the runtime table
# differently; both end in `.runtimes.nvidia]` with or without quotes.
_CONTAINERD_NVIDIA_RE = re.compile(r"""^\s*\[plugins\..*\.runtimes\.["']?nvidia["']?\]\s*$""", re.MULTILINE)


class GpuParseError(ValueError):
    """nvidia-smi printed something that is not the CSV we asked for."""


def _value(raw):
    value = raw.strip()
    return None if value.lower() in _NOT_AVAILABLE else value


def _int_or_none(raw, field, line):
    value = _value(raw)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError as e:
        raise GpuParseError(f"nvidia-smi: field {field} is not a number in line {line!r}") from e


def normalize_mig_mode(raw):
    """`Enabled`/`Disabled` as nvidia-smi prints them; None for GPUs without MIG."""
    value = _value(raw or "")
    if value is None:
        return None
    lowered = value.lower()
    if lowered == "enabled":
        return "Enabled"
    if lowered == "disabled":
        return "Disabled"
    return value


def parse_query_csv(text):
    """Parse `nvidia-smi --query-gpu=<QUERY_FIELDS> --format=csv,noheader,nounits`.

    Returns one dict per GPU, ordered by index. Raises GpuParseError on a line that does
    not have exactly the queried columns (an old driver answering with an error text,
    for example).
    """
    gpus = []
    lines = [line for line in text.splitlines() if line.strip()]
    for row, line in zip(csv.reader(lines, skipinitialspace=True), lines):
        if len(row) != len(QUERY_FIELDS):
            raise GpuParseError(
                f"nvidia-smi: expected {len(QUERY_FIELDS)} comma-separated fields "
                f"({','.join(QUERY_FIELDS)}), got {len(row)} in line {line!r}"
            )
        index, name, uuid, memory, driver, mig, bus_id = row
        gpus.append(
            {
                "index": _int_or_none(index, "index", line),
                "name": _value(name),
                "uuid": _value(uuid),
                "memory_mib": _int_or_none(memory, "memory.total", line),
                "driver_version": _value(driver),
                "mig_mode": normalize_mig_mode(mig),
                "pci_bus_id": _value(bus_id),
            }
        )
    gpus.sort(key=lambda gpu: (gpu["index"] is None, gpu["index"]))
    return gpus


def parse_cuda_version(text):
    """CUDA version from the `nvidia-smi` banner (`CUDA Version: 12.2`) or from
    `nvidia-smi --version` (`CUDA Version : 12.2`); None when absent."""
    match = _CUDA_RE.search(text or "")
    return match.group(1) if match else None


def parse_proc_driver_version(text):
    """Kernel module version from /proc/driver/nvidia/version, e.g.
    `NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.129.03  Thu Oct 19 ...`."""
    match = _NVRM_RE.search((text or "") + " ")
    return match.group(1) if match else None


def read_text(path):
    """Content of a file, or None when it does not exist. PermissionError propagates:
    the caller says which file needs privileges instead of reporting "absent"."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _read(path):
    try:
        return read_text(path)
    except PermissionError:
        return None


def scan_sysfs(pci_devices_path):
    """NVIDIA GPUs seen on the PCI bus (works without any driver).

    Returns dicts {pci_bus_id, device_id, pci_class} sorted by bus id; an absent sysfs
    path gives an empty list.
    """
    try:
        entries = sorted(os.listdir(pci_devices_path))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    found = []
    for entry in entries:
        base = os.path.join(pci_devices_path, entry)
        vendor = (_read(os.path.join(base, "vendor")) or "").strip().lower()
        pci_class = (_read(os.path.join(base, "class")) or "").strip().lower()
        if vendor != NVIDIA_PCI_VENDOR or not pci_class.startswith(GPU_PCI_CLASSES):
            continue
        found.append(
            {
                "pci_bus_id": entry,
                "device_id": (_read(os.path.join(base, "device")) or "").strip().lower() or None,
                "pci_class": pci_class,
            }
        )
    return found


def containerd_has_nvidia_runtime(config_text):
    """True when a containerd config.toml declares a runtime named `nvidia` (k3s writes
    one into /var/lib/rancher/k3s/agent/etc/containerd/config.toml when it finds
    nvidia-container-runtime at start)."""
    return bool(config_text) and bool(_CONTAINERD_NVIDIA_RE.search(config_text))


def docker_has_nvidia_runtime(daemon_json_text):
    """True when /etc/docker/daemon.json has `runtimes.nvidia`. Raises ValueError for a
    file that is not a JSON object (docker itself would refuse to start)."""
    if not daemon_json_text or not daemon_json_text.strip():
        return False
    data = json.loads(daemon_json_text)
    if not isinstance(data, dict):
        raise ValueError("daemon.json is not a JSON object")
    runtimes = data.get("runtimes") or {}
    return isinstance(runtimes, dict) and "nvidia" in runtimes


def summarize(gpus, source, driver_version=None, cuda_version=None):
    """The `researchops_gpu` fact from a list of GPUs (parse_query_csv or scan_sysfs
    shaped). `product`, `memory_mib` and `mig_mode` describe the first GPU, as NVIDIA
    GPU Feature Discovery does for its node labels."""
    names = [gpu.get("name") for gpu in gpus if gpu.get("name")]
    memories = [gpu.get("memory_mib") for gpu in gpus]
    first = gpus[0] if gpus else {}
    return {
        "count": len(gpus),
        "source": source if gpus else "none",
        "product": first.get("name"),
        "products": sorted(set(names)),
        "memory_mib": first.get("memory_mib"),
        "memory_total_mib": sum(memories) if gpus and None not in memories else None,
        "driver_version": driver_version,
        "cuda_version": cuda_version,
        "mig_mode": first.get("mig_mode"),
        "gpus": [
            {
                "index": gpu.get("index", position),
                "name": gpu.get("name"),
                "uuid": gpu.get("uuid"),
                "memory_mib": gpu.get("memory_mib"),
                "mig_mode": gpu.get("mig_mode"),
                "pci_bus_id": gpu.get("pci_bus_id"),
                "device_id": gpu.get("device_id"),
            }
            for position, gpu in enumerate(gpus)
        ],
    }
