"""The NVIDIA driver check of researchops.mlops.nvidia_runtime (tasks/driver.yml) on
recorded outputs.

After a driver upgrade without a reboot, the old kernel module stays loaded while the
new user-space NVML library is installed: NVML's init refuses the pair and nvidia-smi
prints "Failed to initialize NVML: Driver/library version mismatch" (since the 5xx drivers
followed by "NVML library version: 570.124"; recorded in
tinygrad/open-gpu-kernel-modules#47 with kernel module 570.124.06, and intel/llvm#17614),
while /proc/driver/nvidia/version (written by the loaded module, "NVRM version: ... Kernel
Module  <version>  ...") still exists. The old check accepted the node because that file
existed. Each case runs the role's real task file with a stand-in nvidia-smi on PATH that
replays a recorded output, and a recorded /proc/driver/nvidia/version.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "nvidia_driver"
REPO = HERE.parents[1]

# host: (nvidia-smi output file or None for "not installed", its exit status, proc file or None)
CASES = {
    "mismatch-570": ("smi-mismatch-570.txt", 18, "proc-570.124.06.txt"),
    "mismatch-old-message": ("smi-mismatch-old.txt", 18, "proc-535.129.03.txt"),
    "healthy": ("smi-ok-550.54.14.txt", 0, "proc-550.54.14.txt"),
    "healthy-two-gpus": ("smi-ok-2gpu-550.54.14.txt", 0, "proc-550.54.14.txt"),
    "healthy-no-proc": ("smi-ok-550.54.14.txt", 0, None),
    "smi-reports-other-version": ("smi-ok-550.54.14.txt", 0, "proc-535.129.03.txt"),
    "no-driver": (None, 0, None),
}

PLAYBOOK = """
- name: Run the driver check of nvidia_runtime on recorded outputs
  hosts: all
  gather_facts: false
  environment:
    PATH: "{{ standin_bin }}:/usr/bin:/bin"
  tasks:
    - name: Point the role at the recorded /proc/driver/nvidia/version (role vars lose to facts)
      ansible.builtin.set_fact:
        __nvidia_runtime_proc_version_path: "{{ proc_path }}"
    - name: Driver check
      block:
        - name: Run tasks/driver.yml
          ansible.builtin.include_role:
            name: researchops.mlops.nvidia_runtime
            tasks_from: driver.yml
        - name: Record a pass
          ansible.builtin.copy:
            dest: "{{ out_dir }}/{{ inventory_hostname }}.txt"
            content: PASSED
            mode: "0644"
      rescue:
        - name: Record the failure message
          ansible.builtin.copy:
            dest: "{{ out_dir }}/{{ inventory_hostname }}.txt"
            content: "{{ ansible_failed_result.msg }}"
            mode: "0644"
"""


@pytest.fixture(scope="module")
def outcome(tmp_path_factory, ansible_env) -> dict[str, str]:
    work = tmp_path_factory.mktemp("nvidia_driver")
    out = work / "out"
    out.mkdir()
    hosts = {}
    for name, (smi, status, proc) in CASES.items():
        bin_dir = work / name / "bin"
        bin_dir.mkdir(parents=True)
        if smi is not None:
            script = bin_dir / "nvidia-smi"
            script.write_text(f"#!/bin/sh\ncat '{FIXTURES / smi}'\nexit {status}\n")
            script.chmod(0o755)
        hosts[name] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "standin_bin": str(bin_dir),
            "proc_path": str(FIXTURES / proc) if proc else str(work / name / "absent"),
            "__nvidia_runtime_driver_hint": "(hint)",
        }
    inventory = {"all": {"hosts": hosts, "vars": {"out_dir": str(out)}}}
    (work / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (work / "playbook.yml").write_text(PLAYBOOK)
    run = subprocess.run(
        ["ansible-playbook", "-i", str(work / "inventory.yml"), str(work / "playbook.yml")],
        cwd=REPO, env=ansible_env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return {name: (out / f"{name}.txt").read_text() for name in CASES}


@pytest.mark.slow
@pytest.mark.parametrize(("host", "kernel", "library"), [("mismatch-570", "570.124.06", "570.124"), ("mismatch-old-message", "535.129.03", "unknown")])
def test_driver_library_mismatch_is_refused(outcome, host, kernel, library):
    message = outcome[host]
    assert message != "PASSED", f"{host}: a driver/library mismatch passed the check"
    assert f"kernel module loaded is version {kernel}" in message, message
    assert f"user-space library (NVML) is {library}" in message, message
    assert "Driver/library version mismatch" in message, message
    assert "reboot the node" in message, message


@pytest.mark.slow
def test_smi_disagreeing_with_the_loaded_module_is_refused(outcome):
    message = outcome["smi-reports-other-version"]
    assert "kernel module loaded is version 535.129.03" in message, message
    assert "(NVML) is 550.54.14" in message, message


@pytest.mark.slow
@pytest.mark.parametrize("host", ["healthy", "healthy-two-gpus", "healthy-no-proc"])
def test_working_driver_passes(outcome, host):
    assert outcome[host] == "PASSED"


@pytest.mark.slow
def test_no_driver_still_refused(outcome):
    assert "has no working NVIDIA driver" in outcome["no-driver"]
    assert "nvidia-smi is not installed" in outcome["no-driver"]
