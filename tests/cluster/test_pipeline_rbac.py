"""The generated RBAC and the chain step against a real kube-apiserver (the cluster layer's
control plane, controlplane.py: etcd + kube-apiserver v1.36 of ../shared/kube-harness,
RBAC on; no kubelet, so no pod runs).

- The chain step's exact command, as argo-workflows v4.1.2 workflow/executor/resource.go
  getKubectlArguments builds it (`kubectl apply -f <manifest> -o json`), run under the
  generated `<name>-chain` ServiceAccount: the first run creates the next stage's Workflow,
  a retry after the controller labelled it creates nothing and needs no other verb.
- `kubectl auth can-i` for every verb the upstream code calls
  (tests/unit/plugins/filter/test_pipeline_upstream.py lists them with their sources) and
  for Secrets, which no account may read.
The pipeline's inputs are the filter tests' (tests/unit/plugins/filter/pipeline_fixtures.py).
Runs after test_site_apply.py (conftest); applies with --force-conflicts so that what it
checks is the RBAC generated here, whoever applied these objects before."""
from __future__ import annotations

import datetime
import json
import time

import pytest
import yaml
from pipeline_fixtures import example_spec, images, platform

from ansible_collections.researchops.mlops.plugins.filter.pipeline import pipeline_objects

NS = "mlops-pipelines"


@pytest.fixture(scope="module")
def kube(control_plane, upstream):
    def kubectl(*args, stdin=None, check=True):
        return control_plane.kubectl(*args, input=stdin, check=check)

    crds = upstream / "argo-workflows/v4.1.2/crds-full"
    for name in ("argoproj.io_workflows.yaml", "argoproj.io_workflowtemplates.yaml",
                 "argoproj.io_workflowtaskresults.yaml"):
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crds / name))
    for doc in yaml.safe_load_all((upstream / "argo-cd/v3.5.1/install.yaml").read_text(encoding="utf-8")):
        if doc and doc.get("kind") == "CustomResourceDefinition" and doc["spec"]["names"]["kind"] == "Application":
            kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(doc))
    kubectl("wait", "--for=condition=Established", "crd/workflows.argoproj.io", "crd/applications.argoproj.io",
            "--timeout=60s")
    for namespace in (NS, "argocd"):
        kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
    objects = pipeline_objects([example_spec()], platform=platform(), images=images())["mnist"]
    rbac = [o for o in objects if o["kind"] in ("ServiceAccount", "Role", "RoleBinding")]
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin="\n---\n".join(json.dumps(o) for o in rbac))
    return kubectl, objects


def _account(name):
    return f"--as=system:serviceaccount:{NS}:{name}"


def _chain_manifest(objects, stage, following, values):
    wft = next(o for o in objects if o["kind"] == "WorkflowTemplate" and o["metadata"]["name"] == f"mnist-{stage}")
    start = next(t for t in wft["spec"]["templates"] if t["name"] == f"start-{following}")
    text = start["resource"]["manifest"].replace("{{workflow.name}}", values.pop("workflow.name"))
    for name, value in values.items():
        text = text.replace(f"{{{{inputs.parameters.{name}}}}}", value)
    assert "{{" not in text
    return text


@pytest.mark.parametrize("stage, following, values", [
    ("ci", "ct", {"workflow.name": "mnist-ci-abcde", "revision": "a" * 40, "ref": "refs/tags/v1.2.0"}),
    ("ct", "cd", {"workflow.name": "mnist-ct-fghij", "model-version": "v1.2.0"}),
])
def test_chain_step_creates_the_next_workflow_once(kube, tmp_path, stage, following, values):
    kubectl, objects = kube
    name = f"{values['workflow.name']}-{following}"
    manifest = tmp_path / "manifest.json"
    manifest.write_text(_chain_manifest(objects, stage, following, dict(values)))
    first = kubectl("apply", "-f", str(manifest), "-o", "json", _account("mnist-chain"))
    created = json.loads(first.stdout)
    assert created["metadata"]["name"] == name
    assert created["spec"]["workflowTemplateRef"] == {"name": f"mnist-{following}"}
    # The workflow controller labels and updates the Workflow meanwhile.
    kubectl("-n", NS, "label", "workflow", name, "workflows.argoproj.io/phase=Running")
    # A retried chain step: same command, same account, nothing new.
    again = kubectl("apply", "-f", str(manifest), "-o", "json", _account("mnist-chain"))
    assert json.loads(again.stdout)["metadata"]["uid"] == created["metadata"]["uid"]
    listed = json.loads(kubectl("-n", NS, "get", "workflows", "-o", "json").stdout)["items"]
    assert [w["metadata"]["name"] for w in listed].count(name) == 1


def test_a_chain_step_of_another_account_is_forbidden(kube, tmp_path):
    kubectl, objects = kube
    manifest = tmp_path / "manifest.json"
    manifest.write_text(_chain_manifest(objects, "ci", "ct", {"workflow.name": "mnist-ci-zzzzz", "revision": "b" * 40,
                                                              "ref": "refs/heads/main"}))
    for account in ("mnist-ci", "mnist-ct", "mnist-eventsource"):
        result = kubectl("apply", "-f", str(manifest), _account(account), check=False)
        assert result.returncode != 0 and "forbidden" in result.stderr.lower(), account


CAN = {
    "mnist-sensor": [("create", "workflows.argoproj.io"), ("list", "workflows.argoproj.io"),
                     ("get", "workflowtemplates.argoproj.io")],
    "mnist-chain": [("get", "workflows.argoproj.io"), ("create", "workflows.argoproj.io"),
                    ("create", "workflowtaskresults.argoproj.io"), ("patch", "workflowtaskresults.argoproj.io")],
    "mnist-ci": [("create", "workflowtaskresults.argoproj.io"), ("patch", "workflowtaskresults.argoproj.io")],
    "mnist-cd": [("watch", "deployments.apps"), ("list", "deployments.apps")],
}
CANNOT = [("get", "secrets"), ("list", "secrets"), ("delete", "workflows.argoproj.io"),
          ("update", "workflows.argoproj.io"), ("create", "pods"), ("create", "rolebindings.rbac.authorization.k8s.io")]


@pytest.mark.parametrize("account", ["mnist-ci", "mnist-ct", "mnist-cd", "mnist-chain", "mnist-sensor", "mnist-eventsource"])
def test_api_server_grants_exactly_what_upstream_calls(kube, account):
    kubectl, _home = kube
    for verb, resource in CAN.get(account, []):
        assert kubectl("auth", "can-i", "-n", NS, verb, resource, _account(account), check=False).stdout.strip() == "yes", \
            (account, verb, resource)
    for verb, resource in CANNOT:
        assert kubectl("auth", "can-i", "-n", NS, verb, resource, _account(account), check=False).stdout.strip() == "no", \
            (account, verb, resource)
    patch_app = kubectl("auth", "can-i", "-n", "argocd", "patch", "applications.argoproj.io/mnist-serving",
                        _account(account), check=False).stdout.strip()
    assert patch_app == ("yes" if account == "mnist-cd" else "no")
    other_app = kubectl("auth", "can-i", "-n", "argocd", "patch", "applications.argoproj.io/other-serving",
                        _account(account), check=False).stdout.strip()
    assert other_app == "no"


def _wait_for(probe, timeout=60):
    """probe()'s first truthy answer within `timeout` seconds (controllers act on their own time)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer or time.monotonic() > deadline:
            assert answer, f"nothing within {timeout}s"
            return answer
        time.sleep(1)


def _cd_args(objects, name, **values):
    """The generated args of CD step `name`, Argo's {{...}} replaced by `values`, every
    --timeout shortened to 5s."""
    wft = next(o for o in objects if o["kind"] == "WorkflowTemplate" and o["metadata"]["name"] == "mnist-cd")
    args = next(t for t in wft["spec"]["templates"] if t["name"] == name)["container"]["args"]
    out = []
    for arg in args:
        for key, value in values.items():
            arg = arg.replace("{{" + key + "}}", value)
        out.append("--timeout=5s" if arg.startswith("--timeout=") else arg)
    return out


def test_cd_kubectl_steps_under_the_cd_account(kube, tmp_path):
    """The CD steps that hold the CD ServiceAccount are bare kubectl arguments
    (registry.k8s.io/kubectl has no shell): run exactly those, as mnist-cd, against the
    generated Application (Argo CD's CRD from the pinned install.yaml) and a Deployment.
    The patch comes from the plan script, as in test_pipeline_cd_steps.py."""
    from test_pipeline_cd_steps import SHA, lineage, plan

    kubectl, objects = kube
    cd = next(o for o in objects if o["kind"] == "WorkflowTemplate" and o["metadata"]["name"] == "mnist-cd")
    app = next(o for o in objects if o["kind"] == "Application")
    kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(app))
    assert plan(cd, tmp_path, lineage()).returncode == 0
    patch = (tmp_path / "out" / "patch").read_text(encoding="utf-8")  # no '$' in it: as the kubelet passes it
    as_cd = _account("mnist-cd")
    kubectl(*_cd_args(objects, "patch", **{"inputs.parameters.patch": patch}), as_cd)
    source = json.loads(kubectl("-n", "argocd", "get", "application", "mnist-serving", "-o", "json").stdout)["spec"]
    assert source["source"]["targetRevision"] == SHA
    assert source["source"]["kustomize"]["commonAnnotations"] == {"researchops.io/model-version": "v1"}
    assert source["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert len(source["source"]["kustomize"]["patches"]) == 2  # the playbook's patches stay

    version = {"workflow.parameters.model-version": "v1"}
    missing = kubectl(*_cd_args(objects, "wait-created"), as_cd, check=False)
    assert missing.returncode != 0 and "timed out" in missing.stderr, missing.stderr
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "mnist", "namespace": NS}, "spec": {
        "replicas": 1, "selector": {"matchLabels": {"app": "mnist"}}, "template": {
            "metadata": {"labels": {"app": "mnist"}, "annotations": {"researchops.io/model-version": "v0"}},
            "spec": {"containers": [{"name": "main", "image": "model"}]}}}}
    kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(deployment))
    kubectl(*_cd_args(objects, "wait-created"), as_cd)
    stale = kubectl(*_cd_args(objects, "wait-synced", **version), as_cd, check=False)
    assert stale.returncode != 0 and "timed out" in stale.stderr, stale.stderr
    deployment["spec"]["template"]["metadata"]["annotations"]["researchops.io/model-version"] = "v1"
    kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(deployment))
    kubectl(*_cd_args(objects, "wait-synced", **version), as_cd)

    # `rollout status` waits until the Deployment's status says the new generation is
    # observed and available (kubectl polymorphichelpers/rollout_status.go). The layer's
    # control plane runs the deployment and ReplicaSet controllers, which own that status
    # and count a Pod available once its Ready condition is True (replicaset controller,
    # podutil.IsPodAvailable); with no kubelet here, the test plays the kubelet's part.
    rolling = kubectl(*_cd_args(objects, "rollout"), as_cd, check=False)
    assert rolling.returncode != 0, rolling.stdout
    pods = _wait_for(lambda: json.loads(kubectl("-n", NS, "get", "pods", "-l", "app=mnist", "-o", "json").stdout)["items"])
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for pod in pods:
        ready = {"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}]}}
        kubectl("-n", NS, "patch", "pod", pod["metadata"]["name"], "--subresource=status", "--type=merge", "-p", json.dumps(ready))

    def rolled_out():
        answer = kubectl(*_cd_args(objects, "rollout"), as_cd, check=False)
        return answer if answer.returncode == 0 else None

    done = _wait_for(rolled_out)
    assert "successfully rolled out" in done.stdout
