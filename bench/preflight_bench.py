# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Time `site.yml --tags preflight` on an N-node inventory, against a baseline revision
measured in the same run, with the per-task breakdown of ansible.posix.profile_tasks.

The inventory is the lab example's group_vars (plus a vault token and the MNIST pipeline)
with N nodes: 3 servers, one NFS server, one GPU agent, the rest CPU agents. Every node
is this machine through the local connection, so the node checks really run (facts,
node_probe) without SSH; an nvidia-smi stand-in answers for the GPU node. Nothing is
changed: only preflight runs (the baseline's --tags preflight also runs every role's
argument-spec check, which is what it costs).

    .venv/bin/python bench/preflight_bench.py --nodes 10 --rounds 3 --baseline-ref main
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def inventory(dest: Path, nodes: int) -> Path:
    inv = dest / "inventory"
    shutil.copytree(REPO / "inventories" / "lab" / "group_vars", inv / "group_vars")
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    servers = {f"server-{i}": dict(local) for i in range(1, 4)}
    agents = {f"agent-{i}": dict(local) for i in range(1, max(nodes - 4, 1) + 1)}
    gpu = next(iter(agents))
    hosts = {"all": {"children": {
        "k3s_cluster": {"children": {"k3s_servers": {"hosts": servers}, "k3s_agents": {"hosts": agents}}},
        "gpu_nodes": {"hosts": {gpu: None}},
        "nfs_servers": {"hosts": {"storage-1": dict(local)}},
    }}}
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts))
    spec = yaml.safe_load((REPO / "examples" / "mnist" / "pipeline.yml").read_text())
    group_vars = inv / "group_vars" / "all"
    (group_vars / "vault.yml").write_text(yaml.safe_dump({"vault_k3s_token": os.urandom(32).hex()}))
    (group_vars / "zz_bench.yml").write_text(yaml.safe_dump({
        "mlops_pipelines": [spec],
        # No registry mirror to dial (no network here) and little disk needed.
        "k3s_registry_mirrors": {},
        "preflight_min_free_gib": 0.1,
        "nfs_server_host": "127.0.0.1",
        # This container has no /lib/modules of its kernel: the module check would refuse it.
        "prereqs_kernel_modules": [],
    }))
    return inv


def baseline_tree(dest: Path, ref: str) -> Path:
    tree = dest / "baseline"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def run(tree: Path, inv: Path, args: list[str], env: dict) -> tuple[float, int, str]:
    env = dict(env, ANSIBLE_CONFIG=str(tree / "ansible.cfg"))
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inv)] + args
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False)
    return time.monotonic() - start, proc.returncode, proc.stdout + proc.stderr


def breakdown(output: str, top: int) -> list[str]:
    """profile_tasks' summary lines: '<task> ---- 1.23s'."""
    lines = [line for line in output.splitlines() if re.search(r" -{3,} +\d+\.\d+s$", line)]
    return lines[:top]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-ref", default="main", help="git revision to compare with (default: main)")
    parser.add_argument("--top", type=int, default=8, help="tasks shown in each breakdown")
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline revision")
    opts = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="preflight-bench-"))
    try:
        inv = inventory(work, opts.nodes)
        bin_dir = work / "bin"
        bin_dir.mkdir()
        (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 550.90.07\n")
        (bin_dir / "nvidia-smi").chmod(0o755)
        env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}{os.pathsep}{bin_dir}",
                   ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", PROFILE_TASKS_SORT_ORDER="descending",
                   PROFILE_TASKS_TASK_OUTPUT_LIMIT=str(opts.top), ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
                   MLOPS_UPSTREAM_DIR=os.environ.get("MLOPS_UPSTREAM_DIR", str(REPO.parent / "shared" / "upstream")))
        base = None if opts.no_baseline else baseline_tree(work, opts.baseline_ref)
        cases = [] if opts.no_baseline else [
            (f"baseline {opts.baseline_ref}: site.yml --tags preflight", base, ["site.yml", "--tags", "preflight"])]
        cases += [
            ("this tree: site.yml --tags preflight", REPO, ["site.yml", "--tags", "preflight"]),
            ("this tree: playbooks/preflight.yml", REPO, ["playbooks/preflight.yml"]),
            ("this tree: controller checks only", REPO, ["playbooks/preflight.yml", "-e", "preflight_node_checks=false"]),
        ]
        best = {}
        for round_no in range(1, opts.rounds + 1):
            for name, tree, args in cases:
                seconds, rc, out = run(tree, inv, args, env)
                print(f"round {round_no}: {name}: {seconds:.1f}s (rc {rc})", flush=True)
                if rc != 0:
                    print(out[-3000:])
                if name not in best or seconds < best[name][0]:
                    best[name] = (seconds, rc, out)
        print(f"\n{opts.nodes}-node inventory, best of {opts.rounds} rounds, {os.cpu_count()} CPUs")
        base_seconds = None if opts.no_baseline else best[cases[0][0]][0]
        for name, _tree, _args in cases:
            seconds, rc, out = best[name]
            ratio = f"{seconds / base_seconds:5.2f}x baseline" if base_seconds else ""
            print(f"  {name:55s} {seconds:6.1f}s  {ratio}  rc {rc}")
        for name, _tree, _args in cases:
            print(f"\nslowest tasks, {name}:")
            for line in breakdown(best[name][2], opts.top):
                print(f"  {line}")
        print()
        for name in ("this tree: site.yml --tags preflight", "this tree: playbooks/preflight.yml"):
            seconds = best[name][0]
            print(f"target: {name} under 10 s: {'met' if seconds < 10 else 'NOT met'} ({seconds:.1f}s)")
        return 0 if all(b[1] == 0 for b in best.values()) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
