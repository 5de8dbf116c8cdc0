"""Verify researchops.mlops.nvidia_runtime on the molecule container.

No GPU and no NVIDIA repository here: nvidia-smi and the toolkit package are stand-ins
(see prepare.yml and files/). What is real: the driver check, the offline install path,
the pinned version, and the daemon.json merge.
"""
import json
import os
import subprocess
from pathlib import Path

import yaml

SCENARIO = Path(__file__).resolve().parents[1]
VERSIONS = SCENARIO.parents[1] / "roles/mlops/defaults/main/versions.yml"


def pinned_version():
    return yaml.safe_load(VERSIONS.read_text())["mlops_nvidia_container_toolkit_version"]


def test_toolkit_installed_at_pinned_version(host):
    # the version the fixture gave the stand-in package, checked against the pin by prepare
    pkg = host.package("nvidia-container-toolkit")
    assert pkg.is_installed
    assert pkg.version == pinned_version()
    assert host.file("/usr/bin/nvidia-container-runtime").is_file


def test_daemon_json_merged(host):
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert config == {
        "exec-opts": ["native.cgroupdriver=systemd"],
        "log-driver": "json-file",
        "log-opts": {"max-file": "3", "max-size": "10m"},
        "runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}},
        "default-runtime": "nvidia",
    }


def test_clear_failure_without_driver(host):
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    env = dict(os.environ)
    env["ANSIBLE_COLLECTIONS_PATH"] = str(SCENARIO.parents[1] / "collections")
    env["ANSIBLE_FORCE_COLOR"] = "0"
    host.run_expect([0], "mv /usr/bin/nvidia-smi /usr/bin/nvidia-smi.hidden")
    try:
        run = subprocess.run(
            ["ansible-playbook", "-i", inventory, "--check", str(SCENARIO / "driver-missing.yml")],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )
    finally:
        host.run_expect([0], "mv /usr/bin/nvidia-smi.hidden /usr/bin/nvidia-smi")
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert "has no working NVIDIA driver" in out, out
    assert "nvidia-smi is not installed" in out, out
    assert "nvidia-driver" in out, out


def test_toolkit_at_another_version_is_refused(host):
    """The version check can say no: the stand-in package's version comes from the
    fixture (files/standin-versions.yml), and a folder holding it at a version other than
    the pin makes the role stop before installing anything."""
    versions = yaml.safe_load((SCENARIO / "files" / "standin-versions.yml").read_text())
    other_dir = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "nvidia-packages-other"
    assert (other_dir / f"nvidia-container-toolkit_{versions['other']}_all.deb").is_file()
    env = dict(os.environ)
    env["ANSIBLE_COLLECTIONS_PATH"] = str(SCENARIO.parents[1] / "collections")
    env["ANSIBLE_FORCE_COLOR"] = "0"
    run = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "-e", f"nvidia_runtime_package_dir={other_dir}",
         str(SCENARIO / "driver-missing.yml")],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert f"has nvidia-container-toolkit {versions['other']}" in out, out
    assert f"nvidia_runtime_version is {pinned_version()}" in out, out
    assert host.package("nvidia-container-toolkit").version == pinned_version()
