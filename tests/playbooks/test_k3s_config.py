"""Render the k3s node configuration (config.yaml of servers and agents, registries.yaml)
with ansible's template module for small inventories, and check what k3s would read:
cluster-init only on the first of several servers, joiners pointed at it, agents at the
API endpoint, labels/taints/extra options, the Harbor registry entry."""
from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROLE_DEFAULTS = [
    "roles/mlops/defaults/main/platform.yml",
    "roles/mlops/defaults/main/versions.yml",
    "roles/k3s/defaults/main.yml",
    "roles/k3s_server/defaults/main.yml",
    "roles/k3s_agent/defaults/main.yml",
]

PLAYBOOK = """
- name: Render the k3s configuration files
  hosts: k3s_cluster
  gather_facts: false
  vars_files:
    - {root}/roles/k3s/vars/main.yml
  tasks:
    - name: Server config
      ansible.builtin.template:
        src: {root}/roles/k3s_server/templates/config.yaml.j2
        dest: "{out}/{{{{ inventory_hostname }}}}.config.yaml"
        mode: "0600"
      when: inventory_hostname in groups['k3s_servers']
    - name: Agent config
      ansible.builtin.template:
        src: {root}/roles/k3s_agent/templates/config.yaml.j2
        dest: "{out}/{{{{ inventory_hostname }}}}.config.yaml"
        mode: "0600"
      when: inventory_hostname in groups['k3s_agents']
    - name: Registries
      ansible.builtin.template:
        src: {root}/roles/k3s/templates/registries.yaml.j2
        dest: "{out}/{{{{ inventory_hostname }}}}.registries.yaml"
        mode: "0600"
"""


def render(repo_root: Path, tmp_path: Path, servers: dict, agents: dict, group_vars: dict | None = None) -> dict:
    """Run the render playbook; return {host: {"config": ..., "registries": ...}}."""
    defaults: dict = {}
    for rel in ROLE_DEFAULTS:
        defaults.update(yaml.safe_load((repo_root / rel).read_text()))
    defaults.update(group_vars or {})
    inv = tmp_path / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "group_vars" / "all.yml").write_text(yaml.safe_dump(defaults))
    local = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    hosts = {
        "all": {"children": {"k3s_cluster": {"children": {
            "k3s_servers": {"hosts": {name: {**local, **hv} for name, hv in servers.items()}},
            "k3s_agents": {"hosts": {name: {**local, **hv} for name, hv in agents.items()}},
        }}}}
    }
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts))
    out = tmp_path / "out"
    out.mkdir()
    playbook = tmp_path / "render.yml"
    playbook.write_text(textwrap.dedent(PLAYBOOK.format(root=repo_root, out=out)))
    ansible_playbook = Path(repo_root / ".venv" / "bin" / "ansible-playbook")
    proc = subprocess.run([str(ansible_playbook), str(playbook), "-i", str(inv)], cwd=repo_root,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = {}
    for name in list(servers) + list(agents):
        result[name] = {
            "config": yaml.safe_load((out / f"{name}.config.yaml").read_text()),
            "registries": yaml.safe_load((out / f"{name}.registries.yaml").read_text()),
        }
    return result


TOKEN = {"__k3s_cluster_token": "0123456789abcdef0123456789abcdef"}


def test_single_server_uses_sqlite_and_agent_joins_endpoint(repo_root, tmp_path):
    got = render(repo_root, tmp_path,
                 servers={"srv-1": {"ansible_host": "192.0.2.11", **TOKEN}},
                 agents={"gpu-1": {"ansible_host": "192.0.2.31", **TOKEN,
                                   "k3s_node_labels": {"researchops.io/accelerator": "nvidia"}}})
    assert got["srv-1"]["config"] == {
        "node-name": "srv-1",
        "token-file": "/etc/rancher/k3s/cluster-token",
        "write-kubeconfig-mode": "0600",
        "tls-san": ["192.0.2.11"],
        "flannel-backend": "vxlan",
    }
    assert got["gpu-1"]["config"] == {
        "node-name": "gpu-1",
        "server": "https://192.0.2.11:6443",
        "token-file": "/etc/rancher/k3s/cluster-token",
        "node-label": ["researchops.io/accelerator=nvidia"],
    }
    # GPU nodes get no taint unless the inventory sets one.
    assert "node-taint" not in got["gpu-1"]["config"]


def test_three_servers_embedded_etcd(repo_root, tmp_path):
    got = render(
        repo_root, tmp_path,
        servers={
            "pi-1": {"ansible_host": "192.0.2.11", **TOKEN},
            "pi-2": {"ansible_host": "192.0.2.12", **TOKEN},
            "pi-3": {"ansible_host": "192.0.2.13", **TOKEN,
                     "k3s_node_taints": ["node-role.kubernetes.io/control-plane=true:NoSchedule"]},
        },
        agents={"cpu-1": {"ansible_host": "192.0.2.21", **TOKEN}},
        group_vars={"k3s_api_endpoint": "k3s.lab.example.org", "k3s_server_disable": ["traefik"],
                    "k3s_server_extra_config": {"flannel-backend": "wireguard-native",
                                                "etcd-snapshot-retention": 10}},
    )
    first = got["pi-1"]["config"]
    assert first["cluster-init"] is True and "server" not in first
    for name in ("pi-2", "pi-3"):
        config = got[name]["config"]
        assert "cluster-init" not in config
        assert config["server"] == "https://192.0.2.11:6443"
    for name in ("pi-1", "pi-2", "pi-3"):
        config = got[name]["config"]
        assert config["tls-san"] == ["k3s.lab.example.org"]
        assert config["disable"] == ["traefik"]
        assert config["flannel-backend"] == "wireguard-native"  # extra config wins
        assert config["etcd-snapshot-retention"] == 10
    assert got["pi-3"]["config"]["node-taint"] == ["node-role.kubernetes.io/control-plane=true:NoSchedule"]
    assert got["cpu-1"]["config"]["server"] == "https://k3s.lab.example.org:6443"


def test_generated_token_first_server_has_no_token_file(repo_root, tmp_path):
    got = render(repo_root, tmp_path, servers={"srv-1": {}}, agents={})
    assert "token-file" not in got["srv-1"]["config"]


def test_ipv6_endpoint_is_bracketed(repo_root, tmp_path):
    got = render(repo_root, tmp_path, servers={"srv-1": {**TOKEN}}, agents={"a-1": {**TOKEN}},
                 group_vars={"k3s_api_endpoint": "2001:db8::10"})
    assert got["a-1"]["config"]["server"] == "https://[2001:db8::10]:6443"


def test_registries_with_harbor_and_mirrors(repo_root, tmp_path):
    got = render(repo_root, tmp_path, servers={"srv-1": {**TOKEN}}, agents={}, group_vars={
        "mlops_domain": "lab.example.org",
        "k3s_registry_mirrors": {
            "docker.io": ["https://mirror.lab.example.org"],
            "quay.io": {"endpoint": ["https://harbor.lab.example.org"], "rewrite": {"^(.*)$": "quay/$1"}},
        },
        "k3s_registry_harbor_username": "robot$nodes",
        "k3s_registry_harbor_password": "pw",
        "k3s_registry_configs": {"mirror.lab.example.org": {"tls": {"insecure_skip_verify": True}}},
    })
    assert got["srv-1"]["registries"] == {
        "mirrors": {
            "docker.io": {"endpoint": ["https://mirror.lab.example.org"]},
            "harbor.lab.example.org": {"endpoint": ["https://harbor.lab.example.org"]},
            "quay.io": {"endpoint": ["https://harbor.lab.example.org"], "rewrite": {"^(.*)$": "quay/$1"}},
        },
        "configs": {
            "harbor.lab.example.org": {"auth": {"username": "robot$nodes", "password": "pw"}},
            "mirror.lab.example.org": {"tls": {"insecure_skip_verify": True}},
        },
    }


def test_registries_without_harbor(repo_root, tmp_path):
    got = render(repo_root, tmp_path, servers={"srv-1": {**TOKEN}}, agents={},
                 group_vars={"k3s_registry_harbor": False})
    assert got["srv-1"]["registries"] == {"mirrors": {}, "configs": {}}
