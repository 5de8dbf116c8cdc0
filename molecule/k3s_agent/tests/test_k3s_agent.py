"""Verify researchops.mlops.k3s_agent (and the token read-back) after converge, reset, converge.

The k3s binary is the stand-in of molecule/resources/k3s-standin: these tests check what
the roles wrote and did, not Kubernetes itself.
"""
import os

import testinfra
import yaml

VERSION = "v1.34.1+k3s1"


def _name(host):
    return host.backend.get_hostname()


def _config(host):
    f = host.file("/etc/rancher/k3s/config.yaml")
    assert f.is_file and f.user == "root" and f.mode == 0o600
    return yaml.safe_load(f.content_string)


def test_binary(host):
    assert host.check_output("/usr/local/bin/k3s --version").startswith(f"k3s version {VERSION} ")


def test_airgap_images_copied(host):
    f = host.file("/var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar.zst")
    assert f.is_file and f.mode == 0o644
    assert f.content_string.strip() == f"stand-in airgap images of k3s {VERSION}"


def test_units(host):
    server = _name(host) == "k3s-server"
    unit, other = ("k3s", "k3s-agent") if server else ("k3s-agent", "k3s")
    svc = host.service(unit)
    assert svc.is_enabled and svc.is_running
    assert not host.file(f"/etc/systemd/system/{other}.service").exists
    content = host.file(f"/etc/systemd/system/{unit}.service").content_string.splitlines()
    assert ("Type=notify" if server else "Type=exec") in content
    assert f"ExecStart=/usr/local/bin/k3s {'server' if server else 'agent'}" in content


def test_server_generated_token(host):
    if _name(host) != "k3s-server":
        return
    config = _config(host)
    # No k3s_token: the first server runs without token-file and generates its own;
    # a single server uses SQLite (no cluster-init).
    assert "token-file" not in config and "cluster-init" not in config and "server" not in config
    assert not host.file("/etc/rancher/k3s/cluster-token").exists
    assert host.file("/var/lib/rancher/k3s/server/token").mode == 0o600


def test_agent_joins_with_read_back_token(host):
    if _name(host) != "k3s-agent-gpu":
        return
    config = _config(host)
    assert config == {
        "node-name": "k3s-agent-gpu",
        "server": "https://k3s-server:6443",
        "token-file": "/etc/rancher/k3s/cluster-token",
        "node-label": ["researchops.io/accelerator=nvidia"],
        "protect-kernel-defaults": True,
        # k3s_agent_extra_config wins over the CIS kubelet flags (k3s_kubelet_args).
        "kubelet-arg": ["max-pods=150"],
    }
    token = host.file("/etc/rancher/k3s/cluster-token")
    assert token.mode == 0o600
    server = testinfra.get_host(f"ansible://k3s-server?ansible_inventory={os.environ['MOLECULE_INVENTORY_FILE']}")
    server_token = server.file("/var/lib/rancher/k3s/server/token").content_string
    assert "::server:" in server_token
    assert token.content_string == server_token
    assert host.file("/var/lib/rancher/k3s/agent/standin-joined").content_string.strip() == "https://k3s-server:6443"


def test_registries_insecure_harbor(host):
    registries = yaml.safe_load(host.file("/etc/rancher/k3s/registries.yaml").content_string)
    assert registries == {
        "mirrors": {"harbor.lab.example.test": {"endpoint": ["https://harbor.lab.example.test"]}},
        "configs": {"harbor.lab.example.test": {"tls": {"insecure_skip_verify": True}}},
    }


def test_kubelet_hardening_on_the_server(host):
    if _name(host) != "k3s-server":
        return
    config = _config(host)
    assert config["protect-kernel-defaults"] is True and config["secrets-encryption"] is True
    assert "streaming-connection-idle-timeout=5m" in config["kubelet-arg"]


def test_nodes_registered_after_reset_and_converge(host):
    """Each node's process registered again after the reset (stand-in API)."""
    role = "control-plane,etcd,master" if _name(host) == "k3s-server" else "<none>"
    assert host.file(f"/var/lib/standin-api/{_name(host)}").content_string.split() == [role, VERSION]
