"""Verify researchops.mlops.k3s_server (HA config) after converge and the upgrade side effect.

The k3s binary is the stand-in of molecule/resources/k3s-standin: these tests check what
the roles wrote and did (files, modes, unit state, token read-back, kubeconfig rewrite,
upgrade), not Kubernetes itself.
"""
import os
import stat

import yaml

UPGRADED_VERSION = "v1.34.2+k3s1"
TOKEN = "molecule-test-token-0123456789abcdef"
FIRST = "k3s-server-1"


def _name(host):
    return host.backend.get_hostname()


def _config(host):
    f = host.file("/etc/rancher/k3s/config.yaml")
    assert f.is_file and f.user == "root" and f.mode == 0o600
    return yaml.safe_load(f.content_string)


def test_binary_upgraded(host):
    f = host.file("/usr/local/bin/k3s")
    assert f.is_file and f.mode == 0o755
    out = host.check_output("/usr/local/bin/k3s --version")
    assert out.startswith(f"k3s version {UPGRADED_VERSION} ")
    link = host.file("/usr/local/bin/kubectl")
    assert link.is_symlink and link.linked_to == "/usr/local/bin/k3s"


def test_unit(host):
    unit = host.file("/etc/systemd/system/k3s.service")
    assert unit.mode == 0o644
    for line in [
        "Type=notify",
        "KillMode=process",
        "Delegate=yes",
        "LimitNOFILE=1048576",
        "Restart=always",
        "ExecStartPre=-/sbin/modprobe br_netfilter",
        "ExecStartPre=-/sbin/modprobe overlay",
        "ExecStart=/usr/local/bin/k3s server",
        "WantedBy=multi-user.target",
    ]:
        assert line in unit.content_string.splitlines(), line
    svc = host.service("k3s")
    assert svc.is_enabled and svc.is_running
    assert not host.file("/etc/systemd/system/k3s-agent.service").exists


def test_config_ha(host):
    config = _config(host)
    assert config["node-name"] == _name(host)
    assert config["token-file"] == "/etc/rancher/k3s/cluster-token"
    assert config["write-kubeconfig-mode"] == "0600"
    assert config["tls-san"] == ["k3s-api.lab.example.test", "10.0.0.10"]
    assert config["disable"] == ["traefik", "servicelb"]
    assert config["flannel-backend"] == "vxlan"
    if _name(host) == FIRST:
        assert config["cluster-init"] is True
        assert "server" not in config
        assert config["node-label"] == ["researchops.io/role=control-plane"]
    else:
        assert "cluster-init" not in config
        assert config["server"] == f"https://{FIRST}:6443"
        # The stand-in records the server it was started against.
        assert host.file("/var/lib/rancher/k3s/server/standin-joined").content_string.strip() == f"https://{FIRST}:6443"
    if _name(host) == "k3s-server-3":
        assert config["node-taint"] == ["node-role.kubernetes.io/control-plane=true:NoSchedule"]
    else:
        assert "node-taint" not in config


def test_token_file(host):
    f = host.file("/etc/rancher/k3s/cluster-token")
    assert f.mode == 0o600 and f.user == "root"
    assert f.content_string.strip() == TOKEN


def test_token_each_server_started_with(host):
    """The secret the running k3s stand-in was started with, as it recorded it in the
    shared stand-in API (not the role's file read back): every server, joiners included
    (a joiner with another token would have been refused, see the next test)."""
    node = host.backend.get_hostname()
    assert host.file(f"/var/lib/standin-api/{node}.token").content_string.strip() == TOKEN


def test_join_with_another_token_is_refused(host):
    """The stand-in can say no: a server joining with a token that is not the cluster's
    exits 1 before writing anything (own config and data dir, so nothing of the node moves)."""
    probe = host.run(
        "d=$(mktemp -d) && printf 'not-the-cluster-token\\n' > $d/token && "
        "printf 'node-name: probe\\nserver: https://k3s-server-1:6443\\ntoken-file: %s/token\\n' $d > $d/config.yaml && "
        "K3S_CONFIG_FILE=$d/config.yaml K3S_DATA_DIR=$d/data timeout 20 /usr/local/bin/k3s server; "
        "rc=$?; test ! -e $d/data/server/token || echo WROTE-TOKEN; exit $rc"
    )
    assert probe.rc == 1, probe.stdout + probe.stderr
    assert "join refused" in probe.stderr
    assert "WROTE-TOKEN" not in probe.stdout
    assert not host.file("/var/lib/standin-api/probe").exists


def test_registries(host):
    f = host.file("/etc/rancher/k3s/registries.yaml")
    assert f.mode == 0o600
    registries = yaml.safe_load(f.content_string)
    assert registries["mirrors"] == {
        "docker.io": {"endpoint": ["https://mirror.lab.example.test"]},
        "harbor.lab.example.test": {"endpoint": ["https://harbor.lab.example.test"]},
    }
    assert registries["configs"] == {
        "harbor.lab.example.test": {
            "auth": {"username": "robot$nodes", "password": "molecule-not-a-secret"},
            "tls": {"ca_file": "/etc/rancher/k3s/researchops-ca.crt"},
        }
    }


def test_no_airgap_images_by_default(host):
    assert not host.file("/var/lib/rancher/k3s/agent/images").exists


def test_kubeconfig_on_controller(host):
    path = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "kubeconfig", "researchops.yaml")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path, encoding="utf-8") as handle:
        kubeconfig = yaml.safe_load(handle)
    assert [c["cluster"]["server"] for c in kubeconfig["clusters"]] == ["https://k3s-api.lab.example.test:6443"]
    assert kubeconfig["users"][0]["user"]["client-key-data"]


def test_login_user_kubectl(host):
    """k3s's kubectl link (pkg/kubectl/main.go Main) reads KUBECONFIG, else the root-only
    /etc/rancher/k3s/k3s.yaml: the user gets a 0600 copy and KUBECONFIG in login shells."""
    assert host.file("/usr/local/bin/kubectl").linked_to == "/usr/local/bin/k3s"
    config = host.file("/home/labuser/.kube/config")
    assert config.user == "labuser" and config.mode == 0o600
    assert host.file("/home/labuser/.kube").mode == 0o700
    kubeconfig = yaml.safe_load(config.content_string)
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    admin = yaml.safe_load(host.file("/etc/rancher/k3s/k3s.yaml").content_string)
    assert kubeconfig["users"] == admin["users"]
    login = host.run("su - labuser -c 'printf %s \"$KUBECONFIG\"'")
    assert login.rc == 0 and login.stdout == "/home/labuser/.kube/config", login.stdout + login.stderr


def test_hardening(host):
    """The CIS guide's server settings reach the node's config.yaml, and the files the
    flags name exist with the kinds kube-apiserver loads (k3s hardening guide)."""
    config = _config(host)
    assert config["secrets-encryption"] is True
    assert config["protect-kernel-defaults"] is True
    args = config["kube-apiserver-arg"]
    assert "admission-control-config-file=/var/lib/rancher/k3s/server/psa.yaml" in args
    assert "audit-policy-file=/var/lib/rancher/k3s/server/audit.yaml" in args
    assert {"audit-log-maxage=30", "audit-log-maxbackup=10", "audit-log-maxsize=100"} <= set(args)
    assert config["kubelet-arg"][0] == "streaming-connection-idle-timeout=5m"
    for path, kind in (("/var/lib/rancher/k3s/server/psa.yaml", "AdmissionConfiguration"),
                       ("/var/lib/rancher/k3s/server/audit.yaml", "Policy")):
        f = host.file(path)
        assert f.is_file and f.user == "root" and f.mode == 0o600
        assert yaml.safe_load(f.content_string)["kind"] == kind


def test_every_server_runs_the_upgraded_version(host):
    """The stand-in API holds what each running process started from: every server was
    restarted on the new binary (not only the first one, whose kubectl answers)."""
    record = host.file(f"/var/lib/standin-api/{_name(host)}")
    assert record.content_string.split() == ["control-plane,etcd,master", UPGRADED_VERSION]


def test_lab_ca_trusted(host):
    """The CA the controller holds (cert-manager's export) is trusted by the OS (a Harbor
    certificate it signed verifies against the system bundle update-ca-certificates
    built), is the file registries.yaml names, and is in Docker's certs.d where Docker is."""
    ephemeral = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
    with open(os.path.join(ephemeral, "kubeconfig", "researchops-ca.crt"), encoding="utf-8") as handle:
        ca = handle.read()
    with open(os.path.join(ephemeral, "harbor.crt"), encoding="utf-8") as handle:
        harbor_cert = handle.read()
    assert host.file("/etc/rancher/k3s/researchops-ca.crt").content_string == ca
    host.run("mkdir -p /tmp/ca-check")
    host.run(f"printf '%s' '{harbor_cert}' > /tmp/ca-check/harbor.crt")
    result = host.run("openssl verify -CAfile /etc/ssl/certs/ca-certificates.crt /tmp/ca-check/harbor.crt")
    assert result.rc == 0, result.stdout + result.stderr
    docker_ca = host.file("/etc/docker/certs.d/harbor.lab.example.test/ca.crt")
    if _name(host) == "k3s-server-2":
        assert docker_ca.content_string == ca
    else:
        assert not docker_ca.exists


def test_upgrade_drains_restarts_and_uncordons_one_server_at_a_time(host):
    """The stand-in API's event log (written by the running processes and by kubectl
    drain/uncordon): each server is drained, restarted on the new version and uncordoned
    before the next one is touched."""
    if _name(host) != FIRST:
        return
    path = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "standin-api", "events")
    with open(path, encoding="utf-8") as handle:
        events = [line.split() for line in handle if line.strip()]
    first_drain = next(i for i, event in enumerate(events) if event[1] == "drain")
    upgrade = events[first_drain:]
    expected = []
    for name in ("k3s-server-1", "k3s-server-2", "k3s-server-3"):
        expected += [[name, "drain"], [name, "stop"], [name, "start", UPGRADED_VERSION], [name, "uncordon"]]
    assert upgrade == expected
    assert not any(host.file(f"/var/lib/standin-api/{n}.cordoned").exists
                   for n in ("k3s-server-1", "k3s-server-2", "k3s-server-3"))
