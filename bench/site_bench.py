# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Playbook benchmark: a no-change `site.yml` run for both sinks, with the breakdown by
task (ansible.posix.profile_tasks) and by phase.

    bench/site_bench.py --kubeconfig KUBECONFIG [--top 25]
    bench/site_bench.py --render-only [--top 25]     # no cluster needed

apply: site.yml -e mlops_k8s_sink=apply against the cluster of KUBECONFIG (roll-out waits
off; the stand-ins of tests/cluster/standins.py play k3s's Traefik and cert-manager, so a
bare control plane such as ../shared/kube-harness works), run twice, the second run timed.
render: site.yml with the default inventory (render + validate into a temporary folder),
run twice, the second run timed. Goals (issue 7): apply <= 20 s, render <= 15 s.
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


def playbook(args, env):
    started = time.monotonic()
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "site.yml", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"site_bench: site.yml {' '.join(args)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


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
    args = parser.parse_args()
    if not args.render_only and not args.kubeconfig:
        parser.error("--kubeconfig is required unless --render-only")

    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"), ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
               PROFILE_TASKS_TASK_OUTPUT_LIMIT="all", ANSIBLE_NOCOLOR="1")
    env.setdefault("MLOPS_UPSTREAM_DIR", str(REPO_ROOT.parent / "shared" / "upstream"))

    def kubectl(*cmd, check=True, input=None):
        proc = subprocess.run([args.kubectl, "--kubeconfig", args.kubeconfig, *cmd], capture_output=True, text=True, input=input, check=False)
        if check and proc.returncode:
            sys.exit(f"site_bench: kubectl {' '.join(cmd)}: {proc.stderr}")
        return proc

    with tempfile.TemporaryDirectory() as tmp:
        render_args = ["-i", "inventories/local", "-e", f"mlops_render_dir={tmp}/manifests"]
        if args.render_only:
            render_first, _render_out = playbook(render_args, env)
            render_time, render_out = playbook(render_args, env)
            print(f"site.yml render: first run {render_first:.1f} s; load average {load_average()}")
            report("render sink, no-change site.yml", render_time, render_out, args.top, 15)
            return
        stand_ins = standins()
        stand_ins.k3s_stand_ins(kubectl)
        apply_args = ["-i", "inventories/local", "-e", "mlops_k8s_sink=apply", "-e", f"mlops_kubeconfig={args.kubeconfig}",
                      "-e", f"cert_manager_ca_export_path={tmp}/ca.crt"] + [x for item in stand_ins.WAITS_OFF for x in ("-e", item)]
        issuer = stand_ins.CertManagerStandIn(kubectl)
        issuer.start()
        try:
            first, _first_out = playbook(apply_args, env)
            apply_time, apply_out = playbook(apply_args, env)
        finally:
            issuer.stop()
        render_first, _render_out = playbook(render_args, env)
        render_time, render_out = playbook(render_args, env)
    print(f"site.yml apply: first run {first:.1f} s; render: first run {render_first:.1f} s; load average {load_average()}")
    report("apply sink, no-change site.yml", apply_time, apply_out, args.top, 20)
    report("render sink, no-change site.yml", render_time, render_out, args.top, 15)


if __name__ == "__main__":
    main()
