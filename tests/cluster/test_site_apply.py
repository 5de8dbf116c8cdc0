"""The whole platform and the example pipeline applied through site.yml to a real API
server (`-e mlops_k8s_sink=apply`, roll-out waits off: no Pod ever runs), per engine.

The researchops engine's state is reused across the tests of this module, in order:
fresh apply -> no-change re-run -> drift made by hand -> check-mode + diff run -> the run
that restores it. What a controller would do (Traefik's Deployment and IngressClass from
k3s, cert-manager issuing the lab CA) is done by tests/cluster/standins.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .standins import WAITS_OFF, CertManagerStandIn, k3s_stand_ins

REPO_ROOT = Path(__file__).resolve().parents[2]
SINK_ACTIONS = ("researchops.mlops.k8s_apply", "kubernetes.core.k8s")


class Site:
    """site.yml runs against one control plane; each run's sink task results as records."""

    def __init__(self, plane, env, folder):
        self.plane, self.env, self.folder = plane, env, folder
        self.runs = 0
        k3s_stand_ins(plane.kubectl)

    def run(self, engine, *args, timeout=900):
        self.runs += 1
        results = self.folder / f"run{self.runs}.jsonl"
        env = dict(self.env, TASK_LOG_FILE=str(results), ANSIBLE_CALLBACK_PLUGINS=str(REPO_ROOT / "tests" / "callback_plugins"),
                   ANSIBLE_CALLBACKS_ENABLED="task_log")
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "site.yml", "-i", "inventories/local",
               "-e", "mlops_k8s_sink=apply", "-e", f"mlops_kubeconfig={self.plane.kubeconfig}", "-e", f"k8s_sink_apply_engine={engine}",
               "-e", f"cert_manager_ca_export_path={self.folder / 'ca.crt'}"]
        for item in WAITS_OFF:
            cmd += ["-e", item]
        issuer = CertManagerStandIn(self.plane.kubectl)
        issuer.start()
        try:
            proc = subprocess.run([*cmd, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        finally:
            issuer.stop()
        (self.folder / f"run{self.runs}.log").write_text(proc.stdout + proc.stderr)
        records = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
        return proc, records


def recap_changed(stdout):
    line = next(line for line in stdout.splitlines() if line.startswith("localhost") and "changed=" in line)
    return int(line.split("changed=")[1].split()[0])


def sink_records(records):
    return [r for r in records if r["action"] in SINK_ACTIONS and r["status"] != "skipped"]


def applied_objects(records):
    """(kind, namespace, name) -> apiVersion of every object the researchops sink handled."""
    found = {}
    for record in sink_records(records):
        for obj in record.get("objects") or []:
            found[(obj["kind"], obj["namespace"], obj["name"])] = obj["apiVersion"]
    return found


def live_objects(kubectl, objects):
    """(kind, namespace, name) -> live object (None when absent), one `kubectl get -A` per kind."""
    found = {}
    for kind, api_version in sorted({(kind, api) for (kind, _ns, _name), api in objects.items()}):
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        listed = json.loads(kubectl("get", f"{kind}.{group}" if group else kind, "-A", "-o", "json", "--show-managed-fields").stdout)["items"]
        for item in listed:
            meta = item["metadata"]
            found[(kind, meta.get("namespace"), meta["name"])] = item
    return {key: found.get(key) for key in objects}


def resource_versions(kubectl, objects):
    return {key: (obj or {}).get("metadata", {}).get("resourceVersion") for key, obj in live_objects(kubectl, objects).items()}


def sink_fingerprints(kubectl, objects):
    """(kind, namespace, name) -> the object as the sink shapes it: everything but status,
    resourceVersion and other managers' managedFields entries. A write by the sink changes
    it (content, or the time of its managedFields entry); a status update by a controller
    (the Deployment controller, the test's cert-manager stand-in) does not."""
    prints = {}
    for key, obj in live_objects(kubectl, objects).items():
        if obj is None:
            prints[key] = None
            continue
        obj = {k: v for k, v in obj.items() if k != "status"}
        meta = dict(obj["metadata"])
        meta.pop("resourceVersion", None)
        meta["managedFields"] = [entry for entry in meta.get("managedFields") or [] if entry.get("manager") == "researchops"]
        obj["metadata"] = meta
        prints[key] = json.dumps(obj, sort_keys=True)
    return prints


def assert_ok(proc):
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


@pytest.fixture(scope="module")
def site(control_plane, ansible_env, tmp_path_factory):
    return Site(control_plane, ansible_env, tmp_path_factory.mktemp("site"))


@pytest.fixture(scope="module")
def fresh(site):
    proc, records = site.run("researchops")
    assert_ok(proc)
    return records


def test_fresh_apply_creates_every_object(site, fresh):
    objects = applied_objects(fresh)
    assert len(objects) > 200, "the platform and the example pipeline are a few hundred objects"
    versions = resource_versions(site.plane.kubectl, objects)
    missing = sorted(key for key, version in versions.items() if version is None)
    assert not missing, f"reported applied but absent: {missing[:10]}"
    assert all(r["changed"] for r in sink_records(fresh) if r.get("objects"))


def test_second_run_changes_nothing_and_moves_no_resource_version(site, fresh):
    """No resourceVersion moves, except by status updates of controllers (the Deployment
    controller of kube-controller-manager keeps updating the status of Deployments whose
    Pods never start): for those, nothing but status changed and the sink's managedFields
    entry is the same."""
    objects = applied_objects(fresh)
    before = resource_versions(site.plane.kubectl, objects)
    prints = sink_fingerprints(site.plane.kubectl, objects)
    proc, records = site.run("researchops")
    assert_ok(proc)
    changed = [(r["task"], r.get("applied")) for r in sink_records(records) if r["changed"]]
    assert changed == []
    assert recap_changed(proc.stdout) == 0
    after = resource_versions(site.plane.kubectl, objects)
    moved = sorted(key for key in objects if before[key] != after[key])
    assert all(key[0] in ("Deployment", "Certificate") for key in moved), f"resourceVersion moved on a no-change run: {moved[:10]}"
    assert sink_fingerprints(site.plane.kubectl, objects) == prints


def _owned_replicas_deployment(kubectl, objects):
    for kind, namespace, name in sorted(objects):
        if kind != "Deployment":
            continue
        live = json.loads(kubectl("get", "deployment", name, "-n", namespace, "-o", "json", "--show-managed-fields").stdout)
        for entry in live["metadata"].get("managedFields") or []:
            if entry.get("manager") == "researchops" and "f:replicas" in (entry.get("fieldsV1") or {}).get("f:spec", {}):
                return namespace, name, live["spec"]["replicas"]
    raise AssertionError("no Deployment of the platform sets spec.replicas")


def test_drift_is_named_in_check_mode_then_restored_in_one_run(site, fresh):
    kubectl = site.plane.kubectl
    objects = applied_objects(fresh)
    # edited data
    garage = json.loads(kubectl("get", "configmap", "garage", "-n", "object-storage", "-o", "json").stdout)
    data_key = sorted(garage["data"])[0]
    kubectl("patch", "configmap", "garage", "-n", "object-storage", "--type=merge", "-p", json.dumps({"data": {data_key: "edited"}}))
    # changed image (the example)
    kubectl("set", "image", "deployment/argo-server", "-n", "argo", "argo-server=evil/image:1")
    # removed label
    service = json.loads(kubectl("get", "service", "argocd-server", "-n", "argocd", "-o", "json").stdout)
    label = sorted(service["metadata"]["labels"])[0]
    kubectl("label", "service", "argocd-server", "-n", "argocd", f"{label}-")
    # deleted object
    kubectl("delete", "configmap", "argocd-gpg-keys-cm", "-n", "argocd")
    # scaled Deployment
    namespace, name, replicas = _owned_replicas_deployment(kubectl, objects)
    kubectl("scale", "deployment", name, "-n", namespace, f"--replicas={replicas + 3}")
    drifted = {
        ("ConfigMap", "object-storage", "garage"),
        ("Deployment", "argo", "argo-server"),
        ("Service", "argocd", "argocd-server"),
        ("ConfigMap", "argocd", "argocd-gpg-keys-cm"),
        ("Deployment", namespace, name),
    }
    before = sink_fingerprints(kubectl, objects)

    proc, records = site.run("researchops", "--check", "--diff", "--tags", "cluster,platform,pipelines")
    assert_ok(proc)
    assert sink_fingerprints(kubectl, objects) == before, "check mode wrote to the cluster"
    reported = {(o["kind"], o["namespace"], o["name"]) for r in sink_records(records) for o in r.get("objects") or [] if o["action"] != "unchanged"}
    assert reported == drifted
    fields = {(o["kind"], o["namespace"], o["name"]): o.get("fields") for r in sink_records(records) for o in r.get("objects") or []}
    assert fields[("ConfigMap", "object-storage", "garage")] == [f"data.{data_key}"]
    assert fields[("Deployment", "argo", "argo-server")] == ["spec.template.spec.containers[0].image"]
    assert fields[("Service", "argocd", "argocd-server")] in (["metadata.labels"], [f"metadata.labels.{label}"])
    assert fields[("Deployment", namespace, name)] == ["spec.replicas"]
    assert '"image": "evil/image:1"' in proc.stdout and "argo-server" in proc.stdout  # the diff shows before/after

    proc, records = site.run("researchops", "--tags", "cluster,platform,pipelines")
    assert_ok(proc)
    reported = {(o["kind"], o["namespace"], o["name"]) for r in sink_records(records) for o in r.get("objects") or [] if o["action"] != "unchanged"}
    assert reported == drifted, "changed must be reported for exactly the drifted objects"
    assert recap_changed(proc.stdout) == len({r["task"] for r in sink_records(records) if r["changed"]}) > 0
    after = sink_fingerprints(kubectl, objects)
    moved = {key for key in objects if before[key] != after[key]}
    assert moved == drifted
    live = json.loads(kubectl("get", "deployment", "argo-server", "-n", "argo", "-o", "json").stdout)
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] != "evil/image:1"
    assert json.loads(kubectl("get", "configmap", "garage", "-n", "object-storage", "-o", "json").stdout)["data"][data_key] == garage["data"][data_key]
    assert label in json.loads(kubectl("get", "service", "argocd-server", "-n", "argocd", "-o", "json").stdout)["metadata"]["labels"]
    assert json.loads(kubectl("get", "deployment", name, "-n", namespace, "-o", "json").stdout)["spec"]["replicas"] == replicas


@pytest.fixture(scope="module")
def core_site(control_plane, kube_binaries, ansible_env, tmp_path_factory):
    """A second, empty control plane for the kubernetes_core engine."""
    from .controlplane import start_control_plane

    plane, workdir = start_control_plane(kube_binaries)
    try:
        yield Site(plane, ansible_env, tmp_path_factory.mktemp("core-site"))
    finally:
        plane.stop()
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


def test_kubernetes_core_engine_applies_the_platform_and_reruns_without_change(core_site, fresh):
    proc, records = core_site.run("kubernetes_core")
    assert_ok(proc)
    assert any(r["changed"] for r in sink_records(records))
    objects = applied_objects(fresh)  # the same object list, reported by the researchops engine's run
    before = sink_fingerprints(core_site.plane.kubectl, objects)
    missing = sorted(key for key, version in before.items() if version is None)
    assert not missing, f"not created by the kubernetes_core engine: {missing[:10]}"
    proc, records = core_site.run("kubernetes_core")
    assert_ok(proc)
    assert [r["task"] for r in sink_records(records) if r["changed"]] == []
    after = sink_fingerprints(core_site.plane.kubectl, objects)
    moved = sorted(key for key in objects if before[key] != after[key])
    assert not moved, f"the sink wrote on a no-change run: {moved[:10]}"


# ---------------------------------------------------------------- RBAC of the pipeline's Sensors
# Derived from argoproj/argo-events (master 6478ece, 2026-07-18),
# pkg/sensors/triggers/argo-workflow/argo-workflow.go, ArgoWorkflowTrigger.Execute: with
# operation "submit" (what the pipeline's Sensors use) it runs `argo -n <ns> submit <file>`
# (creates the Workflow with the Sensor's ServiceAccount) and then LISTs workflows in that
# namespace by label selector to return the one created.
SENSOR_SUBMIT_ALLOWED = [("create", "workflows.argoproj.io"), ("list", "workflows.argoproj.io")]
# Nothing in that trigger deletes, execs or reads Secrets; a Sensor holding these could
# be turned into a cluster takeover by whoever controls its events.
SENSOR_DENIED = [
    ("delete", "workflows.argoproj.io"), ("create", "pods"), ("create", "pods/exec"), ("get", "secrets"),
    ("list", "secrets"), ("create", "roles.rbac.authorization.k8s.io"), ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("patch", "applications.argoproj.io"), ("impersonate", "serviceaccounts"), ("*", "*"),
]


def can_i(kubectl, verb, resource, namespace, service_account):
    proc = kubectl("auth", "can-i", verb, resource, "-n", namespace, f"--as=system:serviceaccount:{namespace}:{service_account}", check=False)
    return proc.stdout.strip() == "yes"


def test_sensor_service_accounts_hold_exactly_what_the_submit_trigger_uses(site, fresh):
    kubectl = site.plane.kubectl
    sensors = json.loads(kubectl("get", "sensors.argoproj.io", "-A", "-o", "json").stdout)["items"]
    submitting = [s for s in sensors if any((t.get("template") or {}).get("argoWorkflow", {}).get("operation", "submit") == "submit"
                                            for t in s["spec"].get("triggers") or [] if (t.get("template") or {}).get("argoWorkflow"))]
    assert submitting, "the example pipeline has Sensors that submit Workflows"
    problems = []
    for sensor in submitting:
        namespace = sensor["metadata"]["namespace"]
        account = (sensor["spec"].get("template") or {}).get("serviceAccountName") or "default"
        for verb, resource in SENSOR_SUBMIT_ALLOWED:
            if not can_i(kubectl, verb, resource, namespace, account):
                problems.append(f"Sensor {namespace}/{sensor['metadata']['name']} ({account}) cannot {verb} {resource}")
        for verb, resource in SENSOR_DENIED:
            if can_i(kubectl, verb, resource, namespace, account):
                problems.append(f"Sensor {namespace}/{sensor['metadata']['name']} ({account}) may {verb} {resource}")
    assert not problems, problems
