"""Bad inventories fail in preflight, before any host is touched, with a message that
names the fix. Each case is a small inventory run through playbooks/preflight.yml."""
from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TOKEN = "0123456789abcdef0123456789abcdef"

DEBIAN_FACTS = {
    "distribution": "Debian",
    "distribution_major_version": "12",
    "distribution_version": "12.7",
    "os_family": "Debian",
    "architecture": "x86_64",
}
WRAPPER = "tests/playbooks/fixtures/preflight_with_facts.yml"


def run_preflight(repo_root: Path, env: dict, tmp_path: Path, inventory: str, facts: dict | None = None,
                  extra: list[str] | None = None) -> subprocess.CompletedProcess:
    inv = tmp_path / "hosts.yml"
    inv.write_text(textwrap.dedent(inventory))
    host_vars = tmp_path / "host_vars"
    host_vars.mkdir()
    for host, host_facts in (facts or {}).items():
        (host_vars / f"{host}.yml").write_text(json.dumps({"test_facts": host_facts}))
    cmd = [str(Path(env["PATH"].split(":")[0]) / "ansible-playbook"), WRAPPER, "-i", str(inv)]
    return subprocess.run(cmd + (extra or []), cwd=repo_root, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def local_node(name: str) -> str:
    return f"{name}: {{ansible_connection: local, ansible_python_interpreter: '{{{{ ansible_playbook_python }}}}'}}"


def inventory(servers: list[str], agents: list[str] = (), token: str | None = TOKEN, extra_vars: str = "") -> str:
    def hosts(names):
        return "\n".join(f"              {local_node(n)}" for n in names) or "              {}"
    token_line = f"    k3s_token: {token}" if token else ""
    return (
        "all:\n"
        "  children:\n"
        "    k3s_cluster:\n"
        "      children:\n"
        "        k3s_servers:\n"
        "          hosts:\n" + hosts(servers) + "\n"
        "        k3s_agents:\n"
        "          hosts:\n" + hosts(agents) + "\n"
        "  vars:\n"
        f"{token_line}\n{extra_vars}\n"
    )


def assert_failed_with(result: subprocess.CompletedProcess, *fragments: str) -> None:
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    for fragment in fragments:
        assert fragment in out, f"expected {fragment!r} in output:\n{out[-3000:]}"


def test_local_inventory_passes(repo_root, ansible_env, tmp_path):
    result = subprocess.run([str(Path(ansible_env["PATH"].split(":")[0]) / "ansible-playbook"),
                             "playbooks/preflight.yml", "-i", "inventories/local"],
                            cwd=repo_root, env=ansible_env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_good_inventory_passes(repo_root, ansible_env, tmp_path):
    facts = {h: DEBIAN_FACTS for h in ("s1", "a1")}
    result = run_preflight(repo_root, ansible_env, tmp_path, inventory(["s1"], ["a1"]), facts)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_server_group(repo_root, ansible_env, tmp_path):
    result = run_preflight(repo_root, ansible_env, tmp_path, inventory([], ["a1"]), {"a1": DEBIAN_FACTS})
    assert_failed_with(result, "no hosts in group k3s_servers", "Put the first k3s server")


def test_two_servers(repo_root, ansible_env, tmp_path):
    facts = {h: DEBIAN_FACTS for h in ("s1", "s2")}
    result = run_preflight(repo_root, ansible_env, tmp_path, inventory(["s1", "s2"]), facts)
    assert_failed_with(result, "k3s_servers has 2 hosts", "odd number")


def test_missing_vault_token(repo_root, ansible_env, tmp_path):
    result = run_preflight(repo_root, ansible_env, tmp_path, inventory(["s1"], token=None), {"s1": DEBIAN_FACTS})
    assert_failed_with(result, "k3s_token is not set", "vault_k3s_token")


def test_token_from_undefined_vault_variable(repo_root, ansible_env, tmp_path):
    inv = inventory(["s1"], token=None, extra_vars="    k3s_token: '{{ vault_k3s_token }}'")
    result = run_preflight(repo_root, ansible_env, tmp_path, inv, {"s1": DEBIAN_FACTS})
    assert_failed_with(result, "k3s_token is not set", "vault_k3s_token")


def test_duplicate_node_names(repo_root, ansible_env, tmp_path):
    inv = inventory(["s1"], ["a1"])
    inv = inv.replace("a1: {", "a1: {k3s_node_name: s1, ")
    facts = {h: DEBIAN_FACTS for h in ("s1", "a1")}
    result = run_preflight(repo_root, ansible_env, tmp_path, inv, facts)
    assert_failed_with(result, "Node names must be unique", "s1")


def test_unsupported_os(repo_root, ansible_env, tmp_path):
    centos7 = dict(DEBIAN_FACTS, distribution="CentOS", distribution_major_version="7",
                   distribution_version="7.9", os_family="RedHat")
    result = run_preflight(repo_root, ansible_env, tmp_path, inventory(["s1"]), {"s1": centos7})
    assert_failed_with(result, "s1 runs CentOS 7.9", "does not support", "openEuler 22/24")


def test_supported_openeuler_passes(repo_root, ansible_env, tmp_path):
    openeuler = dict(DEBIAN_FACTS, distribution="openEuler", distribution_major_version="24",
                     distribution_version="24.03", os_family="RedHat", architecture="aarch64")
    result = run_preflight(repo_root, ansible_env, tmp_path, inventory(["s1"]), {"s1": openeuler})
    assert result.returncode == 0, result.stdout + result.stderr


def test_unsupported_architecture(repo_root, ansible_env, tmp_path):
    riscv = dict(DEBIAN_FACTS, architecture="riscv64")
    result = run_preflight(repo_root, ansible_env, tmp_path, inventory(["s1"]), {"s1": riscv})
    assert_failed_with(result, "s1 is riscv64")


def test_wrong_variable_type(repo_root, ansible_env, tmp_path):
    inv = inventory(["s1"], extra_vars="    namespaces_labels: not-a-mapping")
    result = run_preflight(repo_root, ansible_env, tmp_path, inv, {"s1": DEBIAN_FACTS})
    assert_failed_with(result, "namespaces_labels")


def test_removed_variable(repo_root, ansible_env, tmp_path):
    inv = inventory(["s1"], extra_vars="    k3s_release_version: v1.30.0+k3s1")
    result = run_preflight(repo_root, ansible_env, tmp_path, inv, {"s1": DEBIAN_FACTS})
    assert_failed_with(result, "k3s_release_version was removed", "mlops_k3s_version")


def test_letsencrypt_needs_token(repo_root, ansible_env, tmp_path):
    inv = inventory(["s1"], extra_vars="    mlops_tls_issuer: letsencrypt")
    result = run_preflight(repo_root, ansible_env, tmp_path, inv, {"s1": DEBIAN_FACTS})
    assert_failed_with(result, "mlops_tls_issuer is letsencrypt", "vault_cloudflare_api_token")
