"""gpu_facts against recorded hosts (tests/unit/fixtures/nvidia_smi/*.yml).

Each fixture is materialised in tmp_path (fake nvidia-smi printing the recorded output,
a sysfs tree, /proc file, runtime configs) and the module runs in-process."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.researchops.mlops.plugins.module_utils import gpu as gpulib
from ansible_collections.researchops.mlops.plugins.modules import gpu_facts

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "nvidia_smi"
HOST_FIXTURES = sorted(p.stem for p in FIXTURES.glob("*.yml") if not p.stem.startswith("node_"))

FAKE_NVIDIA_SMI = """#!/bin/sh
here=$(dirname "$0")
echo "$*" >> "$here/calls.log"
case "$1" in
  --query-gpu=*) f=query ;;
  *) f=banner ;;
esac
cat "$here/$f.stdout"
cat "$here/$f.stderr" >&2
exit "$(cat "$here/$f.rc")"
"""


class ModuleExit(Exception):
    def __init__(self, result, failed=False):
        super().__init__(result.get("msg", ""))
        self.result = result
        self.failed = failed


@pytest.fixture
def module_env(monkeypatch):
    """Capture exit_json/fail_json/warn; nothing on this machine is searched for."""
    warnings = []

    def exit_json(self, **kwargs):
        raise ModuleExit(kwargs)

    def fail_json(self, **kwargs):
        raise ModuleExit(kwargs, failed=True)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, msg: warnings.append(msg))
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, *a, **kw: None)
    return warnings


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def materialise(case: dict, root: Path) -> dict:
    """Write a recorded host under root; return the module arguments pointing at it."""
    args = {
        "pci_devices_path": str(root / "sys/bus/pci/devices"),
        "driver_version_path": str(root / "proc/driver/nvidia/version"),
        "containerd_config_path": str(root / "k3s/config.toml"),
        "docker_daemon_config_path": str(root / "docker/daemon.json"),
        "nvidia_container_runtime_path": str(root / "bin/nvidia-container-runtime"),
    }
    (root / "bin").mkdir(parents=True)
    for bus_id, files in (case.get("sysfs") or {}).items():
        device = root / "sys/bus/pci/devices" / bus_id
        device.mkdir(parents=True)
        for name, value in files.items():
            (device / name).write_text(f"{value}\n")
    for key, rel in (
        ("proc_driver_version", "proc/driver/nvidia/version"),
        ("containerd_config", "k3s/config.toml"),
        ("docker_daemon_json", "docker/daemon.json"),
    ):
        if case.get(key) is not None:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(case[key])
    if case.get("nvidia_container_runtime"):
        _executable(root / "bin/nvidia-container-runtime", "#!/bin/sh\nexit 0\n")
    smi = case.get("nvidia_smi")
    if smi:
        for call in ("query", "banner"):
            for stream in ("stdout", "stderr"):
                (root / "bin" / f"{call}.{stream}").write_text(smi[call][stream] or "")
            (root / "bin" / f"{call}.rc").write_text(str(smi[call]["rc"]))
        args["nvidia_smi_path"] = str(_executable(root / "bin/nvidia-smi", FAKE_NVIDIA_SMI))
    return args


def run(args: dict, check_mode: bool = False) -> ModuleExit:
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args), pytest.raises(ModuleExit) as caught:
        gpu_facts.main()
    return caught.value


def load(name: str) -> dict:
    return yaml.safe_load((FIXTURES / f"{name}.yml").read_text())


@pytest.mark.parametrize("name", HOST_FIXTURES)
def test_recorded_host(name, tmp_path, module_env):
    case = load(name)
    args = materialise(case, tmp_path)
    outcome = run(args)
    assert not outcome.failed, outcome.result
    assert outcome.result["changed"] is False
    fact = outcome.result["ansible_facts"]["researchops_gpu"]
    for key, expected in case["expected"].items():
        if key == "runtime":
            for sub, value in expected.items():
                assert fact["runtime"][sub] == value, f"{name}: runtime.{sub}"
        else:
            assert fact[key] == expected, f"{name}: {key}"
    for fragment in case["warnings"]:
        assert any(fragment in w for w in module_env), (fragment, module_env)
    for warning in module_env:
        assert any(fragment in warning for fragment in case["warnings"]), f"unexpected warning: {warning}"
    if case.get("nvidia_container_runtime"):
        assert fact["runtime"]["nvidia_container_runtime"] == args["nvidia_container_runtime_path"]


def test_query_uses_the_documented_fields(tmp_path, module_env):
    args = materialise(load("one_gpu_t4"), tmp_path)
    run(args)
    calls = (tmp_path / "bin/calls.log").read_text().splitlines()
    assert calls[0] == (
        "--query-gpu=index,name,uuid,memory.total,driver_version,mig.mode.current,pci.bus_id "
        "--format=csv,noheader,nounits"
    )
    assert calls[1] == ""  # plain nvidia-smi for the CUDA version banner


def test_check_mode_is_read_only_and_gives_the_same_fact(tmp_path, module_env):
    args = materialise(load("eight_h100"), tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*") if p.name != "calls.log")
    normal = run(dict(args)).result
    checked = run(dict(args), check_mode=True).result
    assert checked == normal
    assert sorted(str(p) for p in tmp_path.rglob("*") if p.name != "calls.log") == before


def test_fewer_gpus_than_on_the_bus_warns(tmp_path, module_env):
    case = load("eight_h100")
    lines = case["nvidia_smi"]["query"]["stdout"].splitlines()
    case["nvidia_smi"]["query"]["stdout"] = "\n".join(lines[:7]) + "\n"
    outcome = run(materialise(case, tmp_path))
    assert outcome.result["ansible_facts"]["researchops_gpu"]["count"] == 7
    assert module_env == [
        "gpu_facts: 8 NVIDIA GPUs on the PCI bus but nvidia-smi reports 7; check `nvidia-smi -q` and "
        "the kernel log for GPUs that fell off the bus"
    ]


def test_garbage_from_nvidia_smi_falls_back_to_sysfs(tmp_path, module_env):
    case = load("one_gpu_t4")
    case["nvidia_smi"]["query"]["stdout"] = 'Field "mig.mode.current" is not a valid field to query.\n'
    fact = run(materialise(case, tmp_path)).result["ansible_facts"]["researchops_gpu"]
    assert (fact["count"], fact["source"], fact["driver_version"]) == (1, "sysfs", None)
    assert "expected 7 comma-separated fields" in fact["nvidia_smi_error"]
    assert len(module_env) == 1 and "counted 1 NVIDIA GPUs from sysfs" in module_env[0]


def test_banner_failure_keeps_gpus_without_cuda_version(tmp_path, module_env):
    case = load("one_gpu_t4")
    case["nvidia_smi"]["banner"] = {"rc": 15, "stdout": "", "stderr": "Unable to determine the device handle\n"}
    fact = run(materialise(case, tmp_path)).result["ansible_facts"]["researchops_gpu"]
    assert (fact["count"], fact["cuda_version"], fact["driver_version"]) == (1, None, "535.183.01")


def test_nvidia_smi_path_not_executable_fails(tmp_path, module_env):
    args = materialise(load("no_gpu"), tmp_path)
    args["nvidia_smi_path"] = str(tmp_path / "bin/missing-nvidia-smi")
    outcome = run(args)
    assert outcome.failed
    assert "is not an executable file" in outcome.result["msg"]


def test_invalid_daemon_json_warns_and_counts_as_not_configured(tmp_path, module_env):
    case = load("one_gpu_t4")
    case["docker_daemon_json"] = '{"runtimes": {"nvidia": '
    fact = run(materialise(case, tmp_path)).result["ansible_facts"]["researchops_gpu"]
    assert fact["runtime"]["docker"] is False and fact["runtime_configured"] is False
    assert len(module_env) == 1 and "is not valid JSON" in module_env[0]


def test_unreadable_containerd_config_warns(tmp_path, module_env, monkeypatch):
    args = materialise(load("mig_a100"), tmp_path)
    real_read = gpulib.read_text

    def read_text(path):
        if path == args["containerd_config_path"]:
            raise PermissionError(13, "Permission denied", path)
        return real_read(path)

    # As a non-root user would see the k3s config (mode 0600); works when tests run as root.
    monkeypatch.setattr(gpulib, "read_text", read_text)
    fact = run(args).result["ansible_facts"]["researchops_gpu"]
    assert fact["runtime"]["containerd"] is False
    assert any("permission denied" in w for w in module_env)


def test_fact_keys_match_documented_return():
    documented = yaml.safe_load(gpu_facts.RETURN)["ansible_facts"]["contains"]["researchops_gpu"]["contains"]
    fact = gpulib.summarize([], "none")
    fact.update(kernel_module_version=None, nvidia_smi_error=None, runtime={}, runtime_configured=False)
    assert set(fact) == set(documented)
    assert json.dumps(fact)  # plain data, serialisable as a fact
