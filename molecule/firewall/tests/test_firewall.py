"""Verify the host firewall after converge, from the running firewall itself: firewalld's
runtime and permanent configuration and the nftables ruleset it programmed; ufw's status
and the iptables rules it wrote. Expectations from the k3s docs (installation/requirements:
inbound rules per node role; firewalld trusted-zone sources / ufw allow-from for the pod
and service networks) and firewalld's service definitions (nfs, rpc-bind, mountd)."""

POD_CIDR = "10.52.0.0/16"  # set in the scenario (not the default) to prove it is followed
SERVICE_CIDR = "10.43.0.0/16"
SERVER_PORTS = {"6443/tcp", "2379-2380/tcp", "10250/tcp", "8472/udp", "51820-51821/udp", "80/tcp", "443/tcp"}
AGENT_PORTS = {"10250/tcp", "8472/udp", "51820-51821/udp", "80/tcp", "443/tcp"}


def _name(host):
    return host.backend.get_hostname()


def test_firewalld_runtime_and_permanent(host):
    if _name(host) != "k3s-fw-firewalld":
        return
    for scope in ([], ["--permanent"]):
        cmd = ["firewall-cmd", *scope]
        assert set(host.check_output(" ".join(cmd + ["--zone=trusted", "--list-sources"])).split()) == {POD_CIDR, SERVICE_CIDR}
        assert SERVER_PORTS <= set(host.check_output(" ".join(cmd + ["--list-ports"])).split())
        assert {"nfs", "rpc-bind", "mountd"} <= set(host.check_output(" ".join(cmd + ["--list-services"])).split())


def test_firewalld_rules_are_in_the_kernel(host):
    if _name(host) != "k3s-fw-firewalld":
        return
    ruleset = host.check_output("nft list ruleset")
    assert POD_CIDR in ruleset and SERVICE_CIDR in ruleset
    for port in ("6443", "10250", "2049", "443"):
        assert f"dport {port}" in ruleset, port


def test_ufw_rules(host):
    if _name(host) != "k3s-fw-ufw":
        return
    status = host.check_output("ufw status")
    assert "Status: active" in status
    for port in ("10250/tcp", "8472/udp", "51820:51821/udp", "80/tcp", "443/tcp"):
        assert any(line.startswith(port) and "ALLOW" in line for line in status.splitlines()), port
    assert "6443/tcp" not in status  # an agent serves no API
    for cidr in (POD_CIDR, SERVICE_CIDR):
        assert any(line.startswith("Anywhere") and line.rstrip().endswith(cidr) for line in status.splitlines()), cidr
    rules = host.check_output("iptables-save")
    assert f"-A ufw-user-input -s {POD_CIDR} -j ACCEPT" in rules
    assert "--dport 10250 -j ACCEPT" in rules


def test_server_config_follows_the_pod_network(host):
    if _name(host) != "k3s-fw-firewalld":
        return
    import yaml
    config = yaml.safe_load(host.file("/etc/rancher/k3s/config.yaml").content_string)
    assert config["cluster-cidr"] == POD_CIDR and "service-cidr" not in config
