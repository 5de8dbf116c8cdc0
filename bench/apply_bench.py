# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Apply benchmark: the upstream manifests of the platform applied with
`kubectl apply --server-side` (the baseline) and with researchops.mlops.k8s_apply, fresh
and as a no-change re-run, timed in the same run on the same cluster; prints ratios.

    bench/apply_bench.py --kubeconfig ~/.kube/researchops.yaml [--upstream-dir ../shared/upstream]

Every round starts from a clean slate: the benchmark namespaces and the CRDs it applied
are deleted (and waited gone) between rounds. Use a throw-away cluster (k3d/kind/k3s).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def k8s_objects():
    """The collection's object helpers, imported from this checkout."""
    if str(REPO_ROOT / "collections") not in sys.path:
        sys.path.insert(0, str(REPO_ROOT / "collections"))
    from ansible_collections.researchops.mlops.plugins.module_utils import k8s_objects as helpers

    return helpers


# versions.yml entries benchmarked and the namespace each manifest goes to.
MANIFESTS = [
    ("mlops_argocd_manifest", "bench-argocd"),
    ("mlops_argo_workflows_manifest", "bench-argo"),
    ("mlops_argo_events_manifest", "bench-argo-events"),
    ("mlops_cert_manager_crds", None),
]


def fail(message, code=2):
    print(f"apply_bench: {message}", file=sys.stderr)
    sys.exit(code)


def load_objects(upstream_dir, names):
    versions = yaml.safe_load((REPO_ROOT / "roles/mlops/defaults/main/versions.yml").read_text())
    objects = []
    for key, namespace in MANIFESTS:
        if names and key not in names:
            continue
        entries = versions[key] if isinstance(versions[key], list) else [versions[key]]
        for entry in entries:
            path = Path(upstream_dir) / entry["path"]
            if not path.is_file():
                fail(f"{path} not found: pass --upstream-dir (a copy laid out <project>/<tag>/<file>)")
            docs = k8s_objects().load_documents(path.read_text(), str(path))
            scopes = k8s_objects().ObjectScopes(docs)
            for obj in docs:
                if obj["kind"] == "Namespace":
                    continue
                if namespace and scopes.is_namespaced(obj["kind"]):
                    obj.setdefault("metadata", {})["namespace"] = namespace
                for subject in obj.get("subjects") or []:
                    if namespace and subject.get("kind") == "ServiceAccount":
                        subject["namespace"] = namespace
                objects.append(obj)
    namespaces = sorted({ns for key, ns in MANIFESTS if ns and (not names or key in names)})
    ns_objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in namespaces]
    return ns_objects + objects, namespaces


SUMMARY = re.compile(r"k8s_apply: (applied=\d+ drifted=\d+ unchanged=\d+)")
KUBECTL = shutil.which("kubectl") or os.path.join(os.environ.get("KUBEBUILDER_ASSETS", "/nonexistent"), "kubectl")


def kubectl(args, kubeconfig, **kwargs):
    return subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, *args], capture_output=True, text=True, check=False, **kwargs)


def reachable(kubeconfig):
    result = kubectl(["version", "--request-timeout=5s", "-o", "json"], kubeconfig)
    return result.returncode == 0 and "serverVersion" in result.stdout, result.stderr.strip()


def clean(kubeconfig, objects, namespaces, timeout=900):
    """Delete what a round created and wait until it is really gone: a namespace or CRD
    still terminating (kubectl delete --timeout can return before) fails the next apply."""
    crds = [obj["metadata"]["name"] for obj in objects if k8s_objects().is_crd(obj)]
    cluster_scoped = [f"{obj['kind'].lower()}/{obj['metadata']['name']}" for obj in objects if obj["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    batches = [batch for batch in (namespaces and ["namespace", *namespaces], crds and ["crd", *crds], cluster_scoped) if batch]
    for batch in batches:
        kubectl(["delete", "--ignore-not-found", "--wait=false", *batch], kubeconfig)
    deadline = time.monotonic() + timeout
    for batch in batches:
        while kubectl(["get", "--ignore-not-found", "-o", "name", *batch], kubeconfig).stdout.strip():
            if time.monotonic() > deadline:
                fail(f"objects of the previous round still there after {timeout}s: {' '.join(batch)}", 1)
            time.sleep(2)


def time_kubectl(kubeconfig, manifest):
    started = time.monotonic()
    result = kubectl(["apply", "--server-side", "--force-conflicts", "--field-manager=bench-kubectl", "-f", manifest], kubeconfig)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        fail(f"kubectl apply failed: {result.stderr[-2000:]}", 1)
    return elapsed


def time_k8s_apply(kubeconfig, objects, workers, manifest=None):
    """One ansible-playbook run of a k8s_apply task: the objects by reference (src: the
    same manifest file kubectl reads) or, without a manifest, inline in the playbook."""
    source = {"src": [manifest]} if manifest else {"objects": objects}
    playbook = {
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Apply",
                "researchops.mlops.k8s_apply": {"kubeconfig": kubeconfig, "workers": workers, **source},
                "register": "result",
            },
            {
                "name": "Report",
                "ansible.builtin.debug": {
                    "msg": "k8s_apply: applied={{ result.applied | length }} drifted={{ result.drifted | length }} unchanged={{ result.unchanged | length }}"
                },
            },
        ],
    }
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
        yaml.safe_dump([playbook], handle)
        path = handle.name
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"))
    started = time.monotonic()
    result = subprocess.run(
        [shutil.which("ansible-playbook") or str(Path(sys.executable).parent / "ansible-playbook"), path],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    os.unlink(path)
    if result.returncode != 0:
        messages = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith(("msg:", '"msg":'))]
        fail(f"k8s_apply failed: {' | '.join(messages)[:3000] or result.stdout[-3000:]}", 1)
    summary = SUMMARY.search(result.stdout)
    if not summary:
        fail(f"k8s_apply printed no summary:\n{result.stdout[-3000:]}", 1)
    return elapsed, summary.group(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG", str(Path.home() / ".kube/researchops.yaml")))
    parser.add_argument("--upstream-dir", default=os.environ.get("MLOPS_UPSTREAM_DIR", str(REPO_ROOT.parent / "shared/upstream")))
    parser.add_argument("--only", action="append", choices=[key for key, _unused in MANIFESTS], help="benchmark only these manifests")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1, help="repetitions; the best time of each kind is kept")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument(
        "--format",
        choices=["json", "yaml"],
        default="json",
        help="format of the manifest file both tools read (json: one kind: List document; yaml: multi-document)",
    )
    parser.add_argument(
        "--inline",
        action="store_true",
        help="pass the objects to k8s_apply inline in the playbook (objects:) instead of by reference (src:)",
    )
    args = parser.parse_args()

    if not os.access(KUBECTL, os.X_OK):
        fail("kubectl not found on PATH or in $KUBEBUILDER_ASSETS")
    if not Path(args.kubeconfig).is_file():
        fail(f"kubeconfig {args.kubeconfig} not found: no cluster to benchmark against (pass --kubeconfig)")
    ok, error = reachable(args.kubeconfig)
    if not ok:
        fail(f"no API server reachable with {args.kubeconfig}: {error or 'kubectl version failed'}")

    objects, namespaces = load_objects(args.upstream_dir, args.only)
    with tempfile.NamedTemporaryFile("w", suffix=f".{args.format}", delete=False) as handle:
        if args.format == "json":
            json.dump({"apiVersion": "v1", "kind": "List", "items": objects}, handle)
        else:
            yaml.safe_dump_all(objects, handle)
        manifest = handle.name
    how = "inline in the playbook (objects:)" if args.inline else "by reference (src:)"
    print(f"manifest: {args.format}, read by kubectl -f and by k8s_apply {how}")
    print(f"{len(objects)} objects ({sum(map(k8s_objects().is_crd, objects))} CRDs) from {', '.join(args.only or [k for k, _unused in MANIFESTS])}")

    times = {"kubectl": [], "kubectl_rerun": [], "k8s_apply": [], "k8s_apply_rerun": []}
    try:
        for number in range(1, args.rounds + 1):
            clean(args.kubeconfig, objects, namespaces)
            times["kubectl"].append(time_kubectl(args.kubeconfig, manifest))
            times["kubectl_rerun"].append(time_kubectl(args.kubeconfig, manifest))
            clean(args.kubeconfig, objects, namespaces)
            elapsed, fresh = time_k8s_apply(args.kubeconfig, objects, args.workers, None if args.inline else manifest)
            times["k8s_apply"].append(elapsed)
            elapsed, rerun = time_k8s_apply(args.kubeconfig, objects, args.workers, None if args.inline else manifest)
            times["k8s_apply_rerun"].append(elapsed)
            print(
                f"round {number}: kubectl {times['kubectl'][-1]:.2f}s / re-run {times['kubectl_rerun'][-1]:.2f}s; "
                f"k8s_apply {times['k8s_apply'][-1]:.2f}s ({fresh}) / re-run {elapsed:.2f}s ({rerun}); "
                f"load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    finally:
        clean(args.kubeconfig, objects, namespaces)
        os.unlink(manifest)

    best = {key: min(values) for key, values in times.items()}
    print(f"kubectl apply --server-side, fresh      {best['kubectl']:7.2f}s")
    print(f"kubectl apply --server-side, no change  {best['kubectl_rerun']:7.2f}s")
    print(f"k8s_apply, fresh                        {best['k8s_apply']:7.2f}s  ratio {best['k8s_apply'] / best['kubectl']:.2f}x kubectl (target <= 1.5)")
    rerun_ratio = best["k8s_apply_rerun"] / best["kubectl_rerun"]
    print(f"k8s_apply, no change                    {best['k8s_apply_rerun']:7.2f}s  ratio {rerun_ratio:.2f}x kubectl re-run (target <= 1.0)")
    print("(k8s_apply with drift correction on: every object compared with the live one)")
    if args.json:
        print(json.dumps({"objects": len(objects), "seconds": best}, sort_keys=True))


if __name__ == "__main__":
    main()
