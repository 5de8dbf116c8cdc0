# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Playbook benchmark: a no-change `site.yml` run for both sinks, with the breakdown by
task (ansible.posix.profile_tasks) and by phase, against a baseline revision measured in
the same run.

    bench/site_bench.py --kubeconfig KUBECONFIG [--top 25] [--rounds 2] [--baseline-ref main]
    bench/site_bench.py --render-only [--top 25]     # no cluster needed

apply: site.yml -e mlops_k8s_sink=apply against the cluster of KUBECONFIG (roll-out waits
off; the stand-ins of tests/cluster/standins.py play k3s's Traefik and cert-manager, so a
bare control plane such as ../shared/kube-harness works), run once to converge, then the
no-change run timed in every round. render: site.yml with the default inventory (render +
validate into a temporary folder), likewise. With --baseline-ref (default main; "none"
for none), the revision's tree (git archive) runs the same way, alternating with this tree
within each round, each tree with its own empty download cache (mlops_download_cache) and
render folder. Goals (issue 7): apply <= 20 s, render <= 15 s.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def standins():
    """tests/cluster/standins.py: what k3s and cert-manager would do on a bare control plane."""
    spec = importlib.util.spec_from_file_location("standins", REPO_ROOT / "tests" / "cluster" / "standins.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TASK_LINE = re.compile(r"^(?P<task>.+?) -+ (?P<seconds>[0-9.]+)s$")


def baseline_tree(dest, ref):
    """The tree of a git revision (git archive), for the baseline."""
    tree = dest / "baseline"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def playbook(tree, args, env):
    started = time.monotonic()
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "site.yml", *args], cwd=tree,
                          env=dict(env, ANSIBLE_CONFIG=str(Path(tree) / "ansible.cfg")), capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        failed = proc.stdout.split("PLAY RECAP", 1)[0]
        failed = failed[max(failed.rfind("\nfatal:"), failed.rfind("\nfailed:"), 0):][:4000]
        sys.exit(f"site_bench: site.yml {' '.join(args)} in {tree} failed:\n{failed}\n{proc.stderr[-2000:]}")
    recap = re.search(r"changed=(\d+)", proc.stdout.split("PLAY RECAP", 1)[-1])
    return elapsed, proc.stdout, int(recap[1]) if recap else -1


def breakdown(stdout):
    tasks = []
    recap = stdout.split("TASKS RECAP", 1)[-1]
    for line in recap.splitlines():
        match = TASK_LINE.match(line.strip())
        if match:
            tasks.append((float(match["seconds"]), match["task"]))
    return sorted(tasks, reverse=True)


def load_average():
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def report(title, elapsed, stdout, top, goal):
    tasks = breakdown(stdout)
    print(f"\n== {title}: {elapsed:.1f} s wall (goal <= {goal} s), {len(tasks)} tasks, {sum(s for s, _task in tasks):.1f} s in tasks")
    by_role = {}
    for seconds, task in tasks:
        role = task.split(" : ", 1)[0] if " : " in task else "(play)"
        by_role[role] = by_role.get(role, 0.0) + seconds
    print("   by role: " + ", ".join(f"{role.replace('researchops.mlops.', '')} {s:.1f}" for role, s in sorted(by_role.items(), key=lambda i: -i[1])[:8]))
    for seconds, task in tasks[:top]:
        print(f"   {seconds:7.2f}s  {task}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", help="cluster for the apply part (required unless --render-only)")
    parser.add_argument("--render-only", action="store_true", help="only the render part (no cluster needed)")
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    parser.add_argument("--kubectl", default=os.path.join(assets, "kubectl") if assets else "kubectl")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="no-change runs of each tree and sink (best counts)")
    parser.add_argument("--baseline-ref", default="main", help='git revision measured alternately with this tree ("none": none)')
    args = parser.parse_args()
    if not args.render_only and not args.kubeconfig:
        parser.error("--kubeconfig is required unless --render-only")

    env = dict(os.environ, ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", PROFILE_TASKS_TASK_OUTPUT_LIMIT="all", ANSIBLE_NOCOLOR="1")
    env.setdefault("MLOPS_UPSTREAM_DIR", str(REPO_ROOT.parent / "shared" / "upstream"))

    def kubectl(*cmd, check=True, input=None):
        proc = subprocess.run([args.kubectl, "--kubeconfig", args.kubeconfig, *cmd], capture_output=True, text=True, input=input, check=False)
        if check and proc.returncode:
            sys.exit(f"site_bench: kubectl {' '.join(cmd)}: {proc.stderr}")
        return proc

    print(f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; {os.cpu_count()} CPUs; load average {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        trees = [("this tree", REPO_ROOT)]
        if args.baseline_ref != "none":
            trees.insert(0, (f"baseline {args.baseline_ref}", baseline_tree(work, args.baseline_ref)))
        sinks = ["render"] if args.render_only else ["apply", "render"]
        goals = {"apply": 20, "render": 15}

        def sink_args(sink, index):
            common = ["-i", "inventories/local", "-e", f"mlops_download_cache={tmp}/cache{index}"]
            if sink == "render":
                return common + ["-e", f"mlops_render_dir={tmp}/manifests{index}"]
            return common + ["-e", "mlops_k8s_sink=apply", "-e", f"mlops_kubeconfig={args.kubeconfig}",
                             "-e", f"cert_manager_ca_export_path={tmp}/ca{index}.crt"] + [x for item in stand_ins.WAITS_OFF for x in ("-e", item)]

        issuer = None
        if not args.render_only:
            stand_ins = standins()
            stand_ins.k3s_stand_ins(kubectl)
            issuer = stand_ins.CertManagerStandIn(kubectl)
            issuer.start()
        best = {}
        try:
            for sink in sinks:
                for index, (name, tree) in enumerate(trees):
                    elapsed, _out, changed = playbook(tree, sink_args(sink, index), env)
                    print(f"{sink}, {name}: first run {elapsed:.1f} s (changed={changed}); load average {load_average()}", flush=True)
                for round_no in range(1, args.rounds + 1):
                    for index, (name, tree) in enumerate(trees):
                        elapsed, out, changed = playbook(tree, sink_args(sink, index), env)
                        print(f"round {round_no}: {sink}, {name}: no-change run {elapsed:.1f} s (changed={changed}); load average {load_average()}", flush=True)
                        if (sink, name) not in best or elapsed < best[(sink, name)][0]:
                            best[(sink, name)] = (elapsed, out)
        finally:
            if issuer is not None:
                issuer.stop()
    print(f"\nbest of {args.rounds} no-change runs:")
    for sink in sinks:
        base = best.get((sink, trees[0][0]))[0] if len(trees) > 1 else None
        for name, _tree in trees:
            elapsed = best[(sink, name)][0]
            ratio = f"  {elapsed / base:.2f}x {trees[0][0]}" if base and name == "this tree" else ""
            print(f"  {sink:6s} {name:22s} {elapsed:6.1f} s  (goal <= {goals[sink]} s){ratio}")
    for sink in sinks:
        for name, _tree in reversed(trees):
            elapsed, out = best[(sink, name)]
            report(f"{sink} sink, no-change site.yml, {name}", elapsed, out, args.top if name == "this tree" else min(args.top, 8), goals[sink])


if __name__ == "__main__":
    main()
