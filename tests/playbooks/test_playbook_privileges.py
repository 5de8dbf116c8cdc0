"""Plays that run the k3s binary's kubectl on the nodes must run it as root.

`k3s kubectl` reads /etc/rancher/k3s/k3s.yaml, which k3s writes with mode 0600 unless
`write-kubeconfig-mode` says otherwise (k3s pkg/cli/cmds/server.go, flag
"write-kubeconfig-mode"; our default k3s_server_write_kubeconfig_mode is "0600" too), so a
play that waits for a node through roles/k3s/tasks/wait_ready.yml without `become` fails
for every inventory whose ansible_user is not root. node_add.yml had no `become` there.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
NEEDS_ROOT = {"wait_ready.yml", "drain.yml", "uncordon.yml"}


def _k3s_task_files(tasks):
    for task in tasks or []:
        for key in ("block", "rescue", "always"):
            yield from _k3s_task_files(task.get(key))
        for action in ("ansible.builtin.include_role", "ansible.builtin.import_role", "include_role", "import_role"):
            args = task.get(action) or {}
            if args.get("name", "").endswith("k3s") and args.get("tasks_from") in NEEDS_ROOT:
                yield args["tasks_from"]


def _plays():
    for path in sorted([REPO / "site.yml", *(REPO / "playbooks").glob("*.yml")]):
        for play in yaml.safe_load(path.read_text()) or []:
            if "hosts" in play:
                yield path.name, play


PLAYS = [(name, play) for name, play in _plays()
         if any(list(_k3s_task_files(play.get(section))) for section in ("pre_tasks", "tasks", "post_tasks"))]


def test_the_rule_finds_the_plays_it_is_about():
    assert {name for name, _play in PLAYS} >= {"node_add.yml", "upgrade.yml"}


@pytest.mark.parametrize(("name", "play"), PLAYS, ids=[f"{n}:{p['name']}" for n, p in PLAYS])
def test_plays_running_k3s_kubectl_become_root(name, play):
    assert play.get("become") is True, f"{name}: play {play['name']!r} runs k3s kubectl without become"
