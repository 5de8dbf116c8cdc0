"""Render the k3s node configuration (config.yaml of servers and agents, registries.yaml)
with ansible's template module for small inventories, and check what k3s would read:
cluster-init only on the first of several servers, joiners pointed at it, agents at the
API endpoint, labels/taints/extra options, the Harbor registry entry."""
from __future__ import annotations

import json
import subprocess
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
ROLE_VARS = ["roles/k3s/vars/main.yml", "roles/k3s_server/vars/main.yml", "roles/k3s_agent/vars/main.yml"]

PLAYBOOK = """
- name: Render the k3s configuration files
  hosts: k3s_cluster
  gather_facts: false
  vars_files: {vars_files}
  tasks:
    - name: Server config
      ansible.builtin.template:
        src: {root}/roles/k3s/templates/config.yaml.j2
        dest: "{out}/{{{{ inventory_hostname }}}}.config.yaml"
        mode: "0600"
      vars: {server_vars}
      when: inventory_hostname in groups['k3s_servers']
    - name: Files the server config points at
      ansible.builtin.copy:
        content: "{{{{ item.content }}}}"
        dest: "{out}/{{{{ inventory_hostname }}}}.{{{{ item.path | basename }}}}"
        mode: "0600"
      loop: "{{{{ k3s_config_files }}}}"
      vars: {server_vars}
      when: inventory_hostname in groups['k3s_servers']
    - name: Agent config
      ansible.builtin.template:
        src: {root}/roles/k3s/templates/config.yaml.j2
        dest: "{out}/{{{{ inventory_hostname }}}}.config.yaml"
        mode: "0600"
      vars: {agent_vars}
      when: inventory_hostname in groups['k3s_agents']
    - name: Proxy environment
      ansible.builtin.template:
        src: {root}/roles/k3s/templates/k3s.service.env.j2
        dest: "{out}/{{{{ inventory_hostname }}}}.env"
        mode: "0600"
      vars:
        k3s_mode: "{{{{ 'server' if inventory_hostname in groups['k3s_servers'] else 'agent' }}}}"
    - name: Registries
      ansible.builtin.template:
        src: {root}/roles/k3s/templates/registries.yaml.j2
        dest: "{out}/{{{{ inventory_hostname }}}}.registries.yaml"
        mode: "0600"
"""


def include_vars(repo_root: Path, role: str) -> dict:
    """The vars k3s_server / k3s_agent pass to the k3s role in their include_role task:
    the render uses the roles' own wiring, not a copy of it."""
    tasks = yaml.safe_load((repo_root / "roles" / role / "tasks" / "main.yml").read_text())
    includes = [t for t in tasks if t.get("ansible.builtin.include_role", {}).get("name") == "researchops.mlops.k3s"]
    assert len(includes) == 1, f"{role} includes researchops.mlops.k3s once"
    return includes[0]["vars"]


def render(repo_root: Path, tmp_path: Path, servers: dict, agents: dict, group_vars: dict | None = None) -> dict:
    """Run the render playbook; return {host: {"config": ..., "registries": ..., "files": {...}}}."""
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
    playbook.write_text(PLAYBOOK.format(
        root=repo_root, out=out, vars_files=json.dumps([str(repo_root / v) for v in ROLE_VARS]),
        server_vars=json.dumps(include_vars(repo_root, "k3s_server")),
        agent_vars=json.dumps(include_vars(repo_root, "k3s_agent"))))
    ansible_playbook = Path(repo_root / ".venv" / "bin" / "ansible-playbook")
    proc = subprocess.run([str(ansible_playbook), str(playbook), "-i", str(inv)], cwd=repo_root,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = {}
    for name in list(servers) + list(agents):
        result[name] = {
            "config": yaml.safe_load((out / f"{name}.config.yaml").read_text()),
            "registries": yaml.safe_load((out / f"{name}.registries.yaml").read_text()),
            "env": (out / f"{name}.env").read_text(),
            "files": {f.name.split(".", 1)[1]: yaml.safe_load(f.read_text())
                      for f in out.glob(f"{name}.*.yaml") if f.name.split(".", 1)[1] not in
                      ("config.yaml", "registries.yaml")},
        }
    return result


TOKEN = {"__k3s_cluster_token": "0123456789abcdef0123456789abcdef"}


HARDENING_KEYS = ("secrets-encryption", "protect-kernel-defaults", "kube-apiserver-arg",
                  "kube-controller-manager-arg", "kubelet-arg")


def without_hardening(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in HARDENING_KEYS}


def test_single_server_uses_sqlite_and_agent_joins_endpoint(repo_root, tmp_path):
    got = render(repo_root, tmp_path,
                 servers={"srv-1": {"ansible_host": "192.0.2.11", **TOKEN}},
                 agents={"gpu-1": {"ansible_host": "192.0.2.31", **TOKEN,
                                   "k3s_node_labels": {"researchops.io/accelerator": "nvidia"}}})
    assert without_hardening(got["srv-1"]["config"]) == {
        "node-name": "srv-1",
        "token-file": "/etc/rancher/k3s/cluster-token",
        "write-kubeconfig-mode": "0600",
        "tls-san": ["192.0.2.11"],
        "flannel-backend": "vxlan",
    }
    assert without_hardening(got["gpu-1"]["config"]) == {
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


def test_ipv6_first_server_join_url_is_bracketed(repo_root, tmp_path):
    """A joining server's `server:` URL needs brackets around an IPv6 literal (RFC 3986
    host syntax; k3s parses it with net/url)."""
    got = render(repo_root, tmp_path, agents={}, servers={
        "srv-1": {"ansible_host": "2001:db8::11", **TOKEN},
        "srv-2": {"ansible_host": "2001:db8::12", **TOKEN},
        "srv-3": {"ansible_host": "2001:db8::13", **TOKEN},
    })
    assert got["srv-2"]["config"]["server"] == "https://[2001:db8::11]:6443"


# --- Hardening (issue 9, item 6), expectations from the k3s CIS hardening guide
# (k3s-io/docs docs/security/hardening-guide.md, "Configuration for Kubernetes Components").
GUIDE_APISERVER_ARGS = [
    "enable-admission-plugins=NodeRestriction,EventRateLimit",
    "admission-control-config-file=/var/lib/rancher/k3s/server/psa.yaml",
    "audit-log-path=/var/lib/rancher/k3s/server/logs/audit.log",
    "audit-policy-file=/var/lib/rancher/k3s/server/audit.yaml",
    "audit-log-maxage=30",
    "audit-log-maxbackup=10",
    "audit-log-maxsize=100",
    "service-account-extend-token-expiration=false",
]
GUIDE_CIPHERS = ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,"
                 "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,"
                 "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305")
GUIDE_KUBELET_ARGS = ["streaming-connection-idle-timeout=5m", f"tls-cipher-suites={GUIDE_CIPHERS}"]


def test_server_hardening_defaults(repo_root, tmp_path):
    got = render(repo_root, tmp_path, servers={"srv-1": {**TOKEN}}, agents={"a-1": {**TOKEN}})
    server = got["srv-1"]["config"]
    assert server["secrets-encryption"] is True
    assert server["protect-kernel-defaults"] is True
    assert sorted(server["kube-apiserver-arg"]) == sorted(GUIDE_APISERVER_ARGS)
    assert server["kube-controller-manager-arg"] == ["terminated-pod-gc-threshold=10"]
    assert server["kubelet-arg"] == GUIDE_KUBELET_ARGS
    # The kubelet runs on agents too: the guide's kubelet settings apply there.
    agent = got["a-1"]["config"]
    assert agent["protect-kernel-defaults"] is True and agent["kubelet-arg"] == GUIDE_KUBELET_ARGS
    assert not {"secrets-encryption", "kube-apiserver-arg"} & set(agent)

    # The files the flags point at exist, with the kinds kube-apiserver loads
    # (k8s.io/apiserver pkg/apis/apiserver/v1 AdmissionConfiguration; pod-security-admission
    # api/v1 PodSecurityConfiguration; eventratelimit v1alpha1 Configuration; audit.k8s.io/v1 Policy).
    psa = got["srv-1"]["files"]["psa.yaml"]
    assert (psa["apiVersion"], psa["kind"]) == ("apiserver.config.k8s.io/v1", "AdmissionConfiguration")
    plugins = {p["name"]: p["configuration"] for p in psa["plugins"]}
    assert set(plugins) == {"PodSecurity", "EventRateLimit"}
    pod_security = plugins["PodSecurity"]
    assert pod_security["apiVersion"] == "pod-security.admission.config.k8s.io/v1"
    levels = {"privileged", "baseline", "restricted"}
    assert {pod_security["defaults"][m] for m in ("enforce", "audit", "warn")} <= levels
    assert pod_security["defaults"]["enforce"] != "privileged"
    assert pod_security["defaults"]["audit"] == pod_security["defaults"]["warn"] == "restricted"
    assert pod_security["exemptions"]["namespaces"] == ["kube-system"]
    assert plugins["EventRateLimit"]["limits"] == [{"type": "Server", "qps": 5000, "burst": 20000}]
    audit = got["srv-1"]["files"]["audit.yaml"]
    assert (audit["apiVersion"], audit["kind"]) == ("audit.k8s.io/v1", "Policy")
    assert audit["rules"] == [{"level": "Metadata"}]


def test_server_hardening_relaxations(repo_root, tmp_path):
    got = render(repo_root, tmp_path, servers={"srv-1": {**TOKEN}}, agents={"a-1": {**TOKEN}}, group_vars={
        "k3s_server_secrets_encryption": False, "k3s_server_pod_security_admission": False,
        "k3s_server_audit_log": False, "k3s_server_kube_apiserver_args": [],
        "k3s_server_kube_controller_manager_args": [], "k3s_protect_kernel_defaults": False,
        "k3s_kubelet_args": [],
    })
    assert got["srv-1"]["config"]["secrets-encryption"] is False
    assert not set(HARDENING_KEYS[1:]) & set(got["srv-1"]["config"])
    assert not set(HARDENING_KEYS) & set(got["a-1"]["config"])
    assert got["srv-1"]["files"] == {}


def test_audit_rotation_is_configurable(repo_root, tmp_path):
    got = render(repo_root, tmp_path, servers={"srv-1": {**TOKEN}}, agents={}, group_vars={
        "k3s_server_audit_log_maxage": 7, "k3s_server_audit_log_maxbackup": 3, "k3s_server_audit_log_maxsize": 50,
        "k3s_server_pod_security_defaults": {"enforce": "restricted", "audit": "restricted", "warn": "restricted"},
    })
    args = got["srv-1"]["config"]["kube-apiserver-arg"]
    assert {"audit-log-maxage=7", "audit-log-maxbackup=3", "audit-log-maxsize=50"} <= set(args)
    psa = got["srv-1"]["files"]["psa.yaml"]
    assert psa["plugins"][0]["configuration"]["defaults"]["enforce"] == "restricted"


def test_prereqs_sysctls_satisfy_protect_kernel_defaults(repo_root):
    """With protect-kernel-defaults the kubelet refuses to start unless these sysctls hold
    exactly (kubernetes pkg/kubelet/cm/container_manager_linux.go, setupKernelTunables:
    vm.overcommit_memory=1, vm.panic_on_oom=0, kernel.panic=10, kernel.panic_on_oops=1,
    kernel.keys.root_maxkeys=1000000, kernel.keys.root_maxbytes=25000000)."""
    k3s = yaml.safe_load((repo_root / "roles/k3s/defaults/main.yml").read_text())
    prereqs = yaml.safe_load((repo_root / "roles/prereqs/defaults/main.yml").read_text())
    assert k3s["k3s_protect_kernel_defaults"] is True
    kubelet_wants = {"vm.overcommit_memory": 1, "vm.panic_on_oom": 0, "kernel.panic": 10, "kernel.panic_on_oops": 1,
                     "kernel.keys.root_maxkeys": 1000000, "kernel.keys.root_maxbytes": 25000000}
    assert {k: prereqs["prereqs_sysctl"].get(k) for k in kubelet_wants} == kubelet_wants
    # Pod traffic is routed over IPv6 too on dual-stack clusters.
    assert prereqs["prereqs_sysctl"]["net.ipv6.conf.all.forwarding"] == 1


# --- Public role interface (issue 12, item 4)
def test_k3s_mode_is_a_public_required_choice(repo_root):
    spec = yaml.safe_load((repo_root / "roles/k3s/meta/argument_specs.yml").read_text())
    option = spec["argument_specs"]["main"]["options"]["k3s_mode"]
    assert option["required"] is True and option["choices"] == ["server", "agent"]
    assert include_vars(repo_root, "k3s_server")["k3s_mode"] == "server"
    assert include_vars(repo_root, "k3s_agent")["k3s_mode"] == "agent"


def test_k3s_mode_missing_fails_argument_validation(repo_root, tmp_path):
    """Including k3s without k3s_mode fails before any change, naming the variable."""
    playbook = tmp_path / "pb.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Include k3s without a mode", "hosts": "localhost", "gather_facts": False,
        "tasks": [{"name": "Include", "ansible.builtin.include_role": {"name": "researchops.mlops.k3s"}}],
    }]))
    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump({"all": {"children": {"k3s_servers": {"hosts": {"srv-1": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}}}))
    proc = subprocess.run([str(repo_root / ".venv/bin/ansible-playbook"), str(playbook), "-i", str(inv)],
                          cwd=repo_root, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0
    assert "Validation of arguments failed" in proc.stdout + proc.stderr
    assert "k3s_mode" in proc.stdout + proc.stderr


def test_no_role_reads_or_sets_another_roles_private_variables(repo_root):
    """`__<role>_*` variables are a role's internals: no other role (and no playbook) may
    read or set them, so that each role can be driven through its argument spec alone."""
    import re

    pattern = re.compile(r"(?<![\w.])(__[a-z0-9_]+)")
    roles = sorted(p.name for p in (repo_root / "roles").iterdir() if p.is_dir())
    bad = []
    for role in roles:
        for path in (repo_root / "roles" / role).rglob("*"):
            if path.is_file() and path.suffix in (".yml", ".yaml", ".j2"):
                for name in pattern.findall(path.read_text()):
                    if not (name == f"__{role}" or name.startswith(f"__{role}_")):
                        bad.append(f"roles/{role}/{path.relative_to(repo_root / 'roles' / role)}: {name}")
    private = tuple(f"__{role}_" for role in roles)
    for path in sorted((repo_root / "playbooks").glob("*.yml")):
        bad += [f"{path.relative_to(repo_root)}: {n}" for n in pattern.findall(path.read_text()) if n.startswith(private)]
    assert bad == []


# --- Version guard (issue 11, defect 5), run on the node through the role's entry point.
GUARD_PLAYBOOK = """
- name: Run the k3s version guard
  hosts: all
  gather_facts: false
  tasks:
    - name: Guard
      block:
        - name: Version guard
          ansible.builtin.include_role:
            name: researchops.mlops.k3s
            tasks_from: version_guard.yml
        - name: Passed
          ansible.builtin.copy:
            content: ok
            dest: "{{ k3s_install_dir }}/result"
            mode: "0644"
      rescue:
        - name: Refused
          ansible.builtin.copy:
            content: "{{ ansible_failed_result.msg }}"
            dest: "{{ k3s_install_dir }}/result"
            mode: "0644"
"""

GUARD_CASES = {
    # name: (installed, pinned, extra vars, expected: "ok" or a piece of the refusal)
    "fresh": (None, "v1.34.1+k3s1", {}, "ok"),
    "same": ("v1.34.1+k3s1", "v1.34.1+k3s1", {}, "ok"),
    "patch": ("v1.34.1+k3s1", "v1.34.2+k3s1", {}, "ok"),
    "k3s_rebuild": ("v1.34.1+k3s1", "v1.34.1+k3s2", {}, "ok"),
    "next_minor": ("v1.33.5+k3s1", "v1.34.1+k3s1", {}, "ok"),
    "downgrade_patch": ("v1.34.2+k3s1", "v1.34.1+k3s1", {}, "does not support downgrades"),
    "downgrade_k3s": ("v1.34.1+k3s2", "v1.34.1+k3s1", {}, "does not support downgrades"),
    "downgrade_minor": ("v1.34.1+k3s1", "v1.33.5+k3s1", {}, "does not support downgrades"),
    "downgrade_allowed": ("v1.34.2+k3s1", "v1.34.1+k3s1", {"k3s_allow_downgrade": True}, "ok"),
    "skip_minor": ("v1.32.9+k3s1", "v1.34.1+k3s1", {}, "jumps over a Kubernetes minor version"),
    "skip_allowed": ("v1.32.9+k3s1", "v1.34.1+k3s1", {"k3s_allow_minor_skip": True}, "ok"),
}


def test_version_guard(repo_root, tmp_path):
    """k3s does not support downgrades (docs.k3s.io/upgrades) and Kubernetes upgrades one
    minor version at a time (kubernetes.io/releases/version-skew-policy). The installed
    binary is a script printing what `k3s --version` prints (k3s cmd/k3s main: "k3s version
    <version> (<commit>)"); the guard must refuse from the versions alone."""
    hosts = {}
    for case, (installed, pinned, extra, _expected) in GUARD_CASES.items():
        install_dir = tmp_path / case
        install_dir.mkdir()
        if installed:
            binary = install_dir / "k3s"
            binary.write_text(f"#!/bin/sh\necho 'k3s version {installed} (0123abcd)'\n"
                              f"echo 'go version go1.24.6'\n")
            binary.chmod(0o755)
        hosts[case] = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                       "k3s_install_dir": str(install_dir), "mlops_k3s_version": pinned, **extra}
    inv = tmp_path / "hosts.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    playbook = tmp_path / "guard.yml"
    playbook.write_text(GUARD_PLAYBOOK)
    proc = subprocess.run([str(repo_root / ".venv/bin/ansible-playbook"), str(playbook), "-i", str(inv)],
                          cwd=repo_root, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = {case: (tmp_path / case / "result").read_text() for case in GUARD_CASES}
    for case, (_installed, _pinned, _extra, expected) in GUARD_CASES.items():
        if expected == "ok":
            assert got[case] == "ok", (case, got[case])
        else:
            assert expected in got[case], (case, got[case])


def test_proxy_environment(repo_root, tmp_path):
    """systemd EnvironmentFile lines (KEY=value) the k3s unit reads; k3s's docs
    (advanced.md, "Configuring an HTTP proxy") name HTTP_PROXY, HTTPS_PROXY and NO_PROXY."""
    got = render(repo_root, tmp_path, servers={"srv-1": {**TOKEN}}, agents={"a-1": {**TOKEN}}, group_vars={
        "k3s_http_proxy": "http://proxy.lab.example.org:3128", "k3s_https_proxy": "http://proxy.lab.example.org:3128",
        "k3s_no_proxy": ["192.0.2.0/24", ".lab.example.org"]})
    for host in ("srv-1", "a-1"):
        lines = [ln for ln in got[host]["env"].splitlines() if ln and not ln.startswith("#")]
        assert lines == ["HTTP_PROXY=http://proxy.lab.example.org:3128", "HTTPS_PROXY=http://proxy.lab.example.org:3128",
                         "NO_PROXY=192.0.2.0/24,.lab.example.org"]
    unit_tasks = yaml.safe_load((repo_root / "roles/k3s/tasks/unit.yml").read_text())
    env_task = next(t for t in unit_tasks if t.get("ansible.builtin.template", {}).get("src") == "k3s.service.env.j2")
    # The unit reads EnvironmentFile=-/etc/systemd/system/<unit>.service.env.
    unit = (repo_root / "roles/k3s/templates/k3s.service.j2").read_text()
    assert "EnvironmentFile=-/etc/systemd/system/{{ __k3s_unit.name }}.service.env" in unit
    assert env_task["ansible.builtin.template"]["dest"] == "/etc/systemd/system/{{ __k3s_unit.name }}.service.env"


def test_selinux_written_when_asked_and_absent_without_selinux(repo_root, tmp_path):
    """k3s's `selinux` option (docs.k3s.io/advanced#selinux-support: "--selinux" / selinux:
    true) must reach config.yaml; without SELinux facts (here none) auto leaves it out."""
    got = render(repo_root, tmp_path, servers={"srv-1": {**TOKEN, "k3s_selinux": "true"}},
                 agents={"a-1": {**TOKEN}})
    assert got["srv-1"]["config"]["selinux"] is True
    assert "selinux" not in got["a-1"]["config"]


def test_etcd_snapshot_schedule(repo_root, tmp_path):
    """k3s pkg/cli/cmds/server.go (ServerFlags): etcd-snapshot-schedule-cron (a cron spec,
    default "0 */12 * * *") and etcd-snapshot-retention (an int, default 5) are server
    options, read from config.yaml like any flag; they matter only with embedded etcd."""
    servers = {f"pi-{i}": {"ansible_host": f"192.0.2.1{i}", **TOKEN} for i in (1, 2, 3)}
    got = render(repo_root, tmp_path / "set", servers=servers, agents={"cpu-1": {"ansible_host": "192.0.2.21", **TOKEN}},
                 group_vars={"k3s_server_etcd_snapshot_schedule": "0 */6 * * *", "k3s_server_etcd_snapshot_retention": 28})
    for name in servers:
        assert got[name]["config"]["etcd-snapshot-schedule-cron"] == "0 */6 * * *"
        assert got[name]["config"]["etcd-snapshot-retention"] == 28
    assert not any(k.startswith("etcd-") for k in got["cpu-1"]["config"])

    default = render(repo_root, tmp_path / "default", servers=servers, agents={})
    assert not any(k.startswith("etcd-snapshot") for k in default["pi-1"]["config"])  # k3s's own schedule

    sqlite = render(repo_root, tmp_path / "sqlite", servers={"srv-1": {"ansible_host": "192.0.2.11", **TOKEN}}, agents={},
                    group_vars={"k3s_server_etcd_snapshot_schedule": "0 */6 * * *"})
    assert not any(k.startswith("etcd-") for k in sqlite["srv-1"]["config"])
