"""Run the preflight checks in-process against inventory folders, the way the
researchops.mlops.preflight action does inside ansible-playbook (same HostVars, same
templar, same role files), without starting a playbook per inventory.

Used by test_preflight.py as a subprocess (a fresh Ansible plugin loader, whatever other
tests imported before):

    python preflight_harness.py < jobs.json > results.json

jobs: {"controller": {name: case}, "hosts": {name: case}}; a case is one mistake laid
over a copy of inventories/lab (keys group_vars, host_vars, hosts, vault; see
fixtures/preflight/broken/*.yml). results: {name: {"problems": {...}, "report": str}}."""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
GOOD_TOKEN = "3f" * 32
FACTS_DIR = REPO_ROOT / "tests" / "playbooks" / "fixtures" / "os_facts"


def lab_copy(dest: Path, case: dict | None = None) -> Path:
    """The lab example inventory in dest, with a vault.yml and the case's mistake."""
    case = case or {}
    inv = dest / "inventory"
    shutil.copytree(REPO_ROOT / "inventories" / "lab", inv)
    group_vars = inv / "group_vars" / "all"
    vault = case.get("vault", {"vault_k3s_token": GOOD_TOKEN})
    if vault is not False:
        (group_vars / "vault.yml").write_text(yaml.safe_dump(vault))
    overrides = case.get("group_vars") or {}
    unset = [k for k, v in overrides.items() if v is None]
    for path in group_vars.glob("*.yml"):
        data = yaml.safe_load(path.read_text()) or {}
        if any(k in data for k in unset):
            path.write_text(yaml.safe_dump({k: v for k, v in data.items() if k not in unset}))
    set_vars = {k: v for k, v in overrides.items() if v is not None}
    if set_vars:
        (group_vars / "zz_broken.yml").write_text(yaml.safe_dump(set_vars))
    if case.get("host_vars"):
        (inv / "host_vars").mkdir(exist_ok=True)
        for host, values in case["host_vars"].items():
            (inv / "host_vars" / f"{host}.yml").write_text(yaml.safe_dump(values))
    if case.get("hosts"):
        (inv / "hosts.yml").write_text(yaml.safe_dump(case["hosts"]))
    return inv


def load_options():
    from ansible.parsing.dataloader import DataLoader
    loader = DataLoader()
    defaults = loader.load_from_file(str(REPO_ROOT / "roles/preflight/defaults/main.yml"))
    internal = loader.load_from_file(str(REPO_ROOT / "roles/preflight/vars/main.yml"))
    return {
        "supported_os": defaults["preflight_supported_os"],
        "supported_arch": defaults["preflight_supported_arch"],
        "k3s_token_required": defaults["preflight_k3s_token_required"],
        "known_secrets": internal["__preflight_known_secrets"] + defaults["preflight_known_secrets_extra"],
        "removed_variables": defaults["preflight_removed_variables"],
        "max_time_skew": defaults["preflight_max_time_skew"],
        "min_free_gib": defaults["preflight_min_free_gib"],
    }


def context(inventory):
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.vars.hostvars import HostVars
    from ansible.vars.manager import VariableManager

    from ansible_collections.researchops.mlops.plugins.plugin_utils import preflight

    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(inventory)])
    variables = VariableManager(loader=loader, inventory=inventory)
    hostvars = HostVars(inventory, variables, loader)
    controller = variables.get_vars(host=inventory.get_host("localhost"), include_hostvars=False)
    groups = {name: [h.name for h in group.get_hosts()] for name, group in inventory.groups.items()}
    templar = Templar(loader=loader, variables=controller)
    return preflight.Context(loader, templar, hostvars, groups, controller, str(REPO_ROOT / "roles"), load_options())


def controller_problems(inventory):
    from ansible_collections.researchops.mlops.plugins.filter.pipeline import pipeline_objects, pipeline_spec
    from ansible_collections.researchops.mlops.plugins.plugin_utils import preflight
    return preflight.check_controller(context(inventory), pipeline_spec, pipeline_objects)


def _facts(name):
    recorded = json.loads((FACTS_DIR / name).read_text())
    return {k.removeprefix("ansible_"): v for k, v in recorded.items()}


def host_problems(inventory, case):
    """Node checks with recorded facts: every node Debian 12 x86_64 and a healthy probe,
    changed per case under nodes.<host>.{os_facts, facts, probe, unreachable}."""
    from ansible_collections.researchops.mlops.plugins.plugin_utils import preflight
    ctx = context(inventory)
    probes = {}
    for host in ctx.group("k3s_cluster") + ctx.group("nfs_servers"):
        override = (case.get("nodes") or {}).get(host) or {}
        facts = _facts(override.get("os_facts", "debian-12.json"))
        facts.update(override.get("facts") or {})
        probe = {"cgroup_version": 2, "cgroup_memory": True, "modules_missing": [], "free_gib": {"/": 50.0},
                 "time_skew": 0.4, "unreachable_endpoints": {}, "nvidia_driver": "550.90.07" if host in ctx.group("gpu_nodes") else ""}
        probe.update(override.get("probe") or {})
        probes[host] = {"facts": facts, "probe": probe, "unreachable": override.get("unreachable", False),
                        "error": "ssh: connect to host: Connection timed out"}
    return preflight.check_hosts(ctx, probes)


def main():
    from ansible.plugins.loader import init_plugin_loader
    init_plugin_loader([str(REPO_ROOT / "collections")])
    jobs = json.load(sys.stdin)
    results = {}
    work = Path(tempfile.mkdtemp(prefix="preflight-harness-"))
    try:
        for kind, cases in jobs.items():
            for name, case in cases.items():
                inv = lab_copy(work / kind / name, case)
                problems = controller_problems(inv) if kind == "controller" else host_problems(inv, case)
                results[name] = {"problems": problems.as_dict(), "report": problems.report(), "count": len(problems)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT / "collections"))
    os.environ.setdefault("ANSIBLE_CONFIG", str(REPO_ROOT / "ansible.cfg"))
    main()
