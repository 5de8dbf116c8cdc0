"""Preflight refuses every broken inventory before any host is touched.

Each file in fixtures/preflight/broken/ is one mistake laid over a copy of the lab
example inventory (inventories/lab, with a vault.yml holding a real token): group_vars,
host_vars, a replaced hosts.yml or a replaced vault. The controller checks run in-process
through the same code path as the researchops.mlops.preflight action (HostVars, templar,
role files: tests/playbooks/preflight_harness.py), so 90+ inventories cost seconds; a few
end-to-end runs of ansible-playbook prove the wiring (site.yml runs preflight first and
nothing of the node phase runs after a refusal; --tags preflight runs only preflight).

Where the rules come from (upstream, not our code): DNS-1123 names - kubernetes
apimachinery pkg/util/validation/validation.go IsDNS1123Subdomain/IsDNS1123Label; S3
bucket names - AWS "Bucket naming rules" and Garage src/api/common/helpers.rs; Harbor
project names - goharbor/harbor src/server/v2.0/handler/project.go validateProjectName;
Harbor passwords - goharbor/harbor src/common/utils (8-128, upper, lower, digit); k3s
releases vX.Y.Z+k3sN - k3s-io/k3s releases; embedded etcd quorum - etcd FAQ (odd
member counts)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from preflight_harness import lab_copy  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "preflight"
BROKEN = sorted((FIXTURES / "broken").glob("*.yml"))
HOST_CASES = yaml.safe_load((FIXTURES / "hosts.yml").read_text())
REPO_ROOT = Path(__file__).resolve().parents[2]
# Mistakes from every area in one inventory: one report must name all of them.
COMBINED = ["platform-domain-uppercase", "platform-bucket-uppercase", "version-image-latest", "type-docker-log-max-file",
            "pipeline-spec-missing-repo", "secret-token-short", "name-uppercase-node-name", "removed-docker-mirrors",
            "platform-issuer-unknown", "address-ipv6-brackets"]


# Inventories that must pass: the lab example, and variations that are not mistakes.
GOOD = {
    "lab-example": {},
    # Two VMs behind one NAT address, told apart by their SSH ports.
    "nat-pair": {"host_vars": {"cpu-1": {"ansible_host": "203.0.113.5", "ansible_port": 2221},
                               "cpu-2": {"ansible_host": "203.0.113.5", "ansible_port": 2222}},
                 "group_vars": {"nfs_server_exports": [{"path": "/srv/nfs/k3s", "clients": ["192.0.2.0/24", "203.0.113.5"],
                                                        "options": ["rw", "sync"]}]}},
    # IPv6 everywhere, written the way the roles expect (bare, no brackets).
    "ipv6": {"host_vars": {"cpu-1": {"ansible_host": "2001:db8::21", "k3s_node_ip": "2001:db8::21"}},
             "group_vars": {"k3s_api_endpoint": "2001:db8::11",
                            "nfs_server_exports": [{"path": "/srv/nfs/k3s", "clients": ["192.0.2.0/24", "2001:db8::/64"],
                                                    "options": ["rw", "sync"]}]}},
    # Let's Encrypt with everything it needs.
    "letsencrypt": {"group_vars": {"mlops_tls_issuer": "letsencrypt", "cert_manager_acme_email": "ops@example.org"},
                    "vault": {"vault_k3s_token": "3f" * 32, "vault_cloudflare_api_token": "x" * 40}},
    # One server without embedded etcd (no HA) and a pipeline with its webhook secret.
    "single-server-pipeline": {
        "hosts": {"all": {"children": {"k3s_cluster": {"children": {
            "k3s_servers": {"hosts": {"pi-1": {"ansible_host": "192.0.2.11"}}},
            "k3s_agents": {"hosts": {"cpu-1": {"ansible_host": "192.0.2.21"}}}}},
            "nfs_servers": {"hosts": {"storage-1": {"ansible_host": "192.0.2.41"}}}}}},
        "group_vars": {"mlops_pipelines": [yaml.safe_load((Path(__file__).resolve().parents[2] / "examples/mnist/pipeline.yml")
                                                          .read_text())],
                       "pipelines_webhook_secrets": {"mnist": "w" * 40}}},
}


def load(name: str) -> dict:
    return yaml.safe_load((FIXTURES / "broken" / f"{name}.yml").read_text())


def combined_case() -> dict:
    merged = {"group_vars": {}, "host_vars": {}}
    for name in COMBINED:
        case = load(name)
        merged["group_vars"].update(case.get("group_vars") or {})
        for host, values in (case.get("host_vars") or {}).items():
            merged["host_vars"].setdefault(host, {}).update(values)
        if "vault" in case:
            merged["vault"] = case["vault"]
    return merged


@pytest.fixture(scope="module")
def results(ansible_env):
    """Every controller and host case checked in ONE subprocess (fresh plugin loader)."""
    jobs = {
        "controller": {p.stem: yaml.safe_load(p.read_text()) for p in BROKEN},
        "hosts": {f"hosts-{c['name']}": c for c in HOST_CASES},
    }
    jobs["controller"].update({f"good-{name}": case for name, case in GOOD.items()})
    jobs["controller"]["combined"] = combined_case()
    proc = subprocess.run([sys.executable, str(Path(__file__).parent / "preflight_harness.py")], input=json.dumps(jobs),
                          capture_output=True, text=True, cwd=REPO_ROOT, env=ansible_env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


def names_variable(result: dict, variable: str, area: str | None = None) -> bool:
    for where, lines in result["problems"].items():
        if area and where != area:
            continue
        if any(line.startswith((f"{variable} = ", f"{variable}: ", f"{variable} (")) for line in lines):
            return True
    return False


def test_enough_distinct_broken_inventories():
    assert len(BROKEN) >= 60
    expected = [yaml.safe_load(p.read_text())["expect"] for p in BROKEN]
    assert len(set(expected)) >= 50, "cases should name many different variables"


@pytest.mark.parametrize("name", GOOD)
def test_good_inventory_passes(name, results):
    assert results[f"good-{name}"]["count"] == 0, results[f"good-{name}"]["report"]


def test_embedded_local_inventory_passes(ansible_env):
    code = ("import sys, json; sys.argv=['x']; import preflight_harness as h; "
            "from ansible.plugins.loader import init_plugin_loader; "
            "init_plugin_loader([str(h.REPO_ROOT / 'collections')]); "
            "print(h.controller_problems(h.REPO_ROOT / 'inventories' / 'local').report())")
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent, env=ansible_env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("Preflight found 0 problem(s)"), proc.stdout


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_inventory_is_refused(path, results):
    case = yaml.safe_load(path.read_text())
    result = results[path.stem]
    assert result["count"] > 0, f"{path.name} passed preflight"
    assert names_variable(result, case["expect"], case.get("area")), (
        f"no problem names {case['expect']!r}" + (f" under {case['area']!r}" if case.get("area") else "")
        + f":\n{result['report']}")
    # Secrets are named, never shown.
    for value in list((case.get("vault") or {}).values()):
        if isinstance(value, str) and len(value) >= 6:
            assert value not in result["report"], f"secret value printed:\n{result['report']}"


def test_every_problem_reported_at_once(results):
    """One inventory with mistakes in every area: one report names all of them."""
    result = results["combined"]
    for name in COMBINED:
        assert names_variable(result, load(name)["expect"]), f"{load(name)['expect']} missing:\n{result['report']}"
    assert "[platform]" in result["report"] and "[pipelines]" in result["report"]


def test_mlops_argument_spec_matches_defaults():
    """Every mlops_* default has a spec option and every option a default."""
    defaults = {}
    for path in sorted((REPO_ROOT / "roles/mlops/defaults/main").glob("*.yml")):
        defaults.update(yaml.safe_load(path.read_text()))
    spec = yaml.safe_load((REPO_ROOT / "roles/mlops/meta/argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(options)
    kinds = {str: "str", bool: "bool", list: "list", dict: "dict", int: "int"}
    for name, value in defaults.items():
        assert options[name]["type"] == kinds[type(value)], name
        if "default" in options[name] and not isinstance(value, (dict, list)):
            assert options[name]["default"] == value, name


def test_known_secrets_hold_every_vault_example_value():
    """vault.yml.example's placeholders (also the commented ones) are refused."""
    known = yaml.safe_load((REPO_ROOT / "roles/preflight/vars/main.yml").read_text())["__preflight_known_secrets"]
    text = (REPO_ROOT / "inventories/lab/group_vars/all/vault.yml.example").read_text()
    values = []
    for line in text.splitlines():
        line = line.lstrip("# ")
        if line.startswith("vault_") and ":" in line:
            value = yaml.safe_load(line.split(":", 1)[1] or "''")
            if value:
                values.append(str(value))
    assert values, "no example values found"
    assert set(values) <= set(known)


@pytest.mark.parametrize("case", HOST_CASES, ids=[c["name"] for c in HOST_CASES])
def test_host_check(case, results):
    result = results[f"hosts-{case['name']}"]
    if case.get("expect") is None:
        assert result["count"] == 0, result["report"]
    else:
        assert names_variable(result, case["expect"], case.get("area")), result["report"]


def test_downgrade_of_running_cluster_is_refused(ansible_env):
    code = ("import preflight_harness as h; from ansible.plugins.loader import init_plugin_loader; "
            "init_plugin_loader([str(h.REPO_ROOT / 'collections')]); import tempfile, pathlib; "
            "from ansible_collections.researchops.mlops.plugins.plugin_utils import preflight; "
            "ctx = h.context(h.lab_copy(pathlib.Path(tempfile.mkdtemp()))); p = preflight.Problems(); "
            "preflight.check_cluster_version(ctx, p, {'pi-1': 'v1.34.1+k3s1', 'cpu-1': 'v1.33.5+k3s1'}); "
            "assert len(p) == 0, p.report(); "
            "preflight.check_cluster_version(ctx, p, {'pi-1': 'v1.35.0+k3s1'}); print(p.report())")
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent, env=ansible_env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[versions]" in proc.stdout and "mlops_k3s_version = 'v1.34.1+k3s1': is older than v1.35.0+k3s1" in proc.stdout


# ------------------------------------------------------------------- end to end
CALLBACK_DIR = REPO_ROOT / "tests" / "callback_plugins"  # task_log, shared with the cluster layer


def playbook(ansible_env, tmp_path, args, log):
    env = dict(ansible_env)
    env["ANSIBLE_CALLBACK_PLUGINS"] = str(CALLBACK_DIR)
    env["ANSIBLE_CALLBACKS_ENABLED"] = "task_log"
    env["TASK_LOG_FILE"] = str(log)
    cmd = [str(Path(ansible_env["PATH"].split(os.pathsep)[0]) / "ansible-playbook")] + args
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def local_nodes(inv: Path, tmp_path: Path) -> None:
    """Every node of the copied lab answers through the local connection (read-only
    probe); gpu-1 gets an nvidia-smi stand-in that prints a driver version."""
    (inv / "host_vars").mkdir(exist_ok=True)
    for host in ("pi-1", "pi-2", "pi-3", "cpu-1", "cpu-2", "gpu-1", "storage-1"):
        path = inv / "host_vars" / f"{host}.yml"
        data = yaml.safe_load(path.read_text()) if path.exists() else {}
        data.update({"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                     "preflight_min_free_gib": 0.1})
        path.write_text(yaml.safe_dump(data))
    (inv / "group_vars" / "all" / "zz_local.yml").write_text(yaml.safe_dump({
        "preflight_min_free_gib": 0.1, "k3s_registry_mirrors": {}, "prereqs_kernel_modules": []}))


def tasks_run(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.slow
def test_site_with_broken_inventory_runs_no_node_task(ansible_env, tmp_path):
    case = yaml.safe_load((FIXTURES / "broken" / "platform-domain-uppercase.yml").read_text())
    inv = lab_copy(tmp_path, case)
    local_nodes(inv, tmp_path)
    log = tmp_path / "tasks.jsonl"
    result = playbook(ansible_env, tmp_path, ["site.yml", "-i", str(inv)], log)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "mlops_domain = 'Lab.Example.org'" in out, out[-3000:]
    ran = tasks_run(log)
    assert ran, "the callback logged nothing"
    plays = {t["play"] for t in ran}
    assert all(p.startswith("Preflight") for p in plays), plays
    hosts = {t["host"] for t in ran}
    assert hosts == {"localhost"}, f"a task ran on a node: {hosts}"


@pytest.mark.slow
def test_tags_preflight_runs_only_preflight_and_passes_the_lab(ansible_env, tmp_path):
    inv = lab_copy(tmp_path)
    local_nodes(inv, tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 550.90.07\n")
    smi.chmod(0o755)
    env = dict(ansible_env)
    env["PATH"] = f"{env['PATH']}{os.pathsep}{bin_dir}"
    log = tmp_path / "tasks.jsonl"
    result = playbook(env, tmp_path, ["site.yml", "-i", str(inv), "--tags", "preflight"], log)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    ran = tasks_run(log)
    others = [t for t in ran if not t["play"].startswith("Preflight") and t["status"] != "skipped"]
    assert not others, others
    probed = {t["host"] for t in ran if "Probe the node" in t["task"] and t["status"] == "ok"}
    assert probed == {"pi-1", "pi-2", "pi-3", "cpu-1", "cpu-2", "gpu-1", "storage-1"}, probed
    assert not any(t["become"] for t in ran if t["status"] != "skipped"), "preflight used become"


@pytest.mark.slow
def test_node_add_under_limit_checks_the_limited_nodes_only(ansible_env, tmp_path):
    """node_add.yml runs with --limit 'gpu-1,localhost' (README "Operations"): Ansible
    probes gpu-1 alone, so the hosts check must leave the other nodes out instead of
    reporting them unreachable (it checked every k3s_cluster host, probed or not), and
    still check gpu-1: without its driver stand-in it is refused."""
    inv = lab_copy(tmp_path)
    local_nodes(inv, tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 550.90.07\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    args = ["playbooks/node_add.yml", "-i", str(inv), "--limit", "gpu-1,localhost", "--tags", "preflight"]
    log = tmp_path / "tasks.jsonl"
    result = playbook(dict(ansible_env, PATH=f"{ansible_env['PATH']}{os.pathsep}{bin_dir}"), tmp_path, args, log)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert {t["host"] for t in tasks_run(log) if "Probe the node" in t["task"] and t["status"] == "ok"} == {"gpu-1"}

    result = playbook(ansible_env, tmp_path, args, tmp_path / "refused.jsonl")
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "[host gpu-1]" in out and "is a GPU node but no NVIDIA driver answers" in out, out[-3000:]
    assert "[host pi-1]" not in out and "cannot be reached" not in out
