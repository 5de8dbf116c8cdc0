"""/etc/exports of researchops.mlops.nfs_server rendered by ansible's template module from
the role's own defaults and the lab inventory: the default export is offered to the
cluster's node addresses only (never "*") and squashes root (exports(5): root_squash maps
uid 0 to the anonymous uid; "*" lets any host that reaches the server mount it)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

PLAYBOOK = """
- name: Render /etc/exports
  hosts: nfs_servers
  gather_facts: false
  tasks:
    - name: Exports
      ansible.builtin.template:
        src: {root}/roles/nfs_server/templates/exports.j2
        dest: "{out}/exports"
        mode: "0644"
    - name: Export directories
      ansible.builtin.copy:
        content: "{{{{ nfs_server_exports | to_json }}}}"
        dest: "{out}/exports.json"
        mode: "0644"
"""


def render(repo_root: Path, tmp_path: Path, hosts: dict, group_vars: dict | None = None):
    inv = tmp_path / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    defaults = yaml.safe_load((repo_root / "roles/nfs_server/defaults/main.yml").read_text())
    (inv / "group_vars" / "all.yml").write_text(yaml.safe_dump({**defaults, **(group_vars or {})}))
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts))
    out = tmp_path / "out"
    out.mkdir()
    playbook = tmp_path / "render.yml"
    playbook.write_text(PLAYBOOK.format(root=repo_root, out=out))
    proc = subprocess.run([str(repo_root / ".venv/bin/ansible-playbook"), str(playbook), "-i", str(inv),
                           "-c", "local", "-e", "ansible_python_interpreter={{ ansible_playbook_python }}"],
                          cwd=repo_root, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [ln for ln in (out / "exports").read_text().splitlines() if ln and not ln.startswith("#")]
    return lines, yaml.safe_load((out / "exports.json").read_text())


def lab_hosts(repo_root: Path) -> dict:
    return yaml.safe_load((repo_root / "inventories/lab/hosts.yml").read_text())


def test_default_export_goes_to_the_cluster_nodes_with_root_squash(repo_root, tmp_path):
    lines, exports = render(repo_root, tmp_path, lab_hosts(repo_root))
    options = "rw,sync,no_subtree_check,root_squash"
    nodes = ["192.0.2.11", "192.0.2.12", "192.0.2.13", "192.0.2.21", "192.0.2.22", "192.0.2.31"]
    assert lines == ["/srv/nfs/k3s " + " ".join(f"{n}({options})" for n in nodes)]
    # The squashed CSI driver creates volume directories as the anonymous user.
    assert (exports[0]["owner"], exports[0]["group"]) == ("65534", "65534")


def test_node_ip_wins_and_no_root_squash_is_explicit(repo_root, tmp_path):
    hosts = lab_hosts(repo_root)
    hosts["all"]["children"]["k3s_cluster"]["children"]["k3s_agents"]["hosts"]["gpu-1"]["k3s_node_ip"] = "10.9.0.31"
    lines, exports = render(repo_root, tmp_path, hosts, {"nfs_server_root_squash": False})
    assert "10.9.0.31(rw,sync,no_subtree_check,no_root_squash)" in lines[0]
    assert "192.0.2.31" not in lines[0] and "*" not in lines[0]
    assert exports[0]["owner"] == "root"


def test_lab_inventory_export_is_not_open_to_everyone(repo_root, tmp_path):
    """The lab walkthrough's own export (inventories/lab/group_vars/all/nodes.yml)."""
    group_vars = yaml.safe_load((repo_root / "inventories/lab/group_vars/all/nodes.yml").read_text())
    lines, _output = render(repo_root, tmp_path, lab_hosts(repo_root), group_vars)
    for line in lines:
        clients = line.split()[1:]
        assert not any(c.startswith("*") for c in clients), line
        assert all(("no_root_squash" not in c) == group_vars.get("nfs_server_root_squash", True) for c in clients), line
