"""The `cluster` layer: one real control plane (etcd + kube-apiserver [+ controller
manager], see controlplane.py) for the whole test run, started on free ports, stopped and
wiped at the end. Without binaries every test of the layer is skipped, loudly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from .controlplane import NoBinaries, start_control_plane

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def control_plane():
    try:
        plane, workdir = start_control_plane()
    except NoBinaries as e:
        message = f"CLUSTER LAYER SKIPPED: {e}"
        print(f"\n{'!' * 78}\n{message}\n{'!' * 78}", file=sys.stderr)
        pytest.skip(message)
    try:
        yield plane
    finally:
        plane.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def kubectl(control_plane):
    return control_plane.kubectl


def get_json(kubectl, *args):
    return json.loads(kubectl("get", "-o", "json", *args).stdout)


@pytest.fixture(scope="session")
def playbook(control_plane, ansible_env, tmp_path_factory):
    """run(tasks, check=False, diff=False, extra=()) -> CompletedProcess of ansible-playbook
    running `tasks` on localhost with the control plane's kubeconfig in `kubeconfig`."""
    folder = tmp_path_factory.mktemp("plays")
    env = dict(ansible_env, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_CALLBACK_RESULT_FORMAT="json")

    def run(tasks, *args, timeout=600):
        play = [{"name": "cluster test", "hosts": "localhost", "connection": "local", "gather_facts": False,
                 "vars": {"kubeconfig": str(control_plane.kubeconfig), "ansible_python_interpreter": sys.executable},
                 "tasks": tasks}]
        handle, path = tempfile.mkstemp(suffix=".yml", dir=folder)
        with os.fdopen(handle, "w") as out:
            yaml.safe_dump(play, out)
        return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", path, *args],
                              cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)

    return run
