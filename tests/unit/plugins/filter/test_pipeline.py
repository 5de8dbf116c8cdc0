"""pipeline_objects / pipeline_spec: the generated objects are valid upstream objects and
carry the behaviour the pipeline promises (GPU scheduling, gate, chaining, RBAC, re-runs)."""
from __future__ import annotations

import copy
import json
import re
import subprocess

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.researchops.mlops.plugins.filter.pipeline import pipeline_objects, pipeline_spec
from ansible_collections.researchops.mlops.plugins.module_utils.pipeline.spec import load_schema

from pipeline_fixtures import REPO_ROOT, example_spec, images, platform
from pipeline_validation import validate_object


def generate(spec=None):
    return pipeline_objects([spec or example_spec()], platform=platform(), images=images())["mnist"]


def by_kind(objects, kind, name=None):
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert found, f"no {kind} {name or ''}"
    return found if name is None else found[0]


def template(wft, name):
    return next(t for t in wft["spec"]["templates"] if t["name"] == name)


def env(container):
    return {item["name"]: item.get("value") for item in container.get("env", [])}


@pytest.fixture(scope="module")
def objects():
    return generate()


def test_every_object_is_valid_upstream(objects, upstream):
    assert len(objects) == 26
    for obj in objects:
        errors = validate_object(obj, upstream)
        assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: {errors}"


def test_strict_validation_catches_unknown_fields(objects, upstream):
    """The validation above would fail on a typo: prove it for each family of kinds."""
    for kind in ("WorkflowTemplate", "Sensor", "EventSource", "Application", "Role"):
        bad = copy.deepcopy(by_kind(objects, kind)[0])
        bad["spec" if "spec" in bad else "metadata"]["unknownField"] = True
        assert validate_object(bad, upstream), kind


def test_output_is_deterministic():
    first = json.dumps(generate(), sort_keys=True)
    assert json.dumps(generate(), sort_keys=True) == first
    assert not re.search(r"20[0-9]{2}-[0-9]{2}-[0-9]{2}T", first)


def test_no_namespace_or_secret_objects(objects):
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"Namespace", "Secret", "ClusterRole", "ClusterRoleBinding", "EventBus"}
    assert {o["metadata"]["namespace"] for o in objects} == {"mlops-pipelines", "argocd"}


def test_names_and_labels(objects):
    for obj in objects:
        assert obj["metadata"]["name"].startswith("mnist-")
        assert obj["metadata"]["labels"]["researchops.io/pipeline"] == "mnist"


def test_ci_clones_commit_and_builds_with_registry_cache(objects):
    wft = by_kind(objects, "WorkflowTemplate", "mnist-ci")
    assert wft["spec"]["serviceAccountName"] == "mnist-ci"
    params = {p["name"]: p for p in wft["spec"]["arguments"]["parameters"]}
    assert "value" not in params["revision"]  # required on submit
    checkout = template(wft, "checkout")["container"]
    assert checkout["image"] == images()["git"]
    assert env(checkout)["REPO_URL"] == "https://github.com/researchops-lab/mnist.git"
    build = template(wft, "build")["container"]
    assert build["image"] == images()["kaniko"]
    args = build["args"]
    repo = "harbor.lab.example.internal/mlops/mnist"
    assert f"--destination={repo}:{{{{inputs.parameters.commit-sha}}}}" in args
    assert f"--destination={repo}:{{{{inputs.parameters.version}}}}" in args
    assert "--cache=true" in args
    assert "--cache-repo=harbor.lab.example.internal/mlops-cache/mnist" in args
    assert "--registry-certificate=harbor.lab.example.internal=/etc/researchops/ca/ca.crt" in args
    volumes = {v["name"]: v for v in wft["spec"]["volumes"]}
    assert volumes["docker-config"]["secret"] == {
        "secretName": "harbor-ci-robot", "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}
    assert volumes["platform-ca"]["configMap"]["name"] == "researchops-ca"
    mounts = {m["name"]: m["mountPath"] for m in build["volumeMounts"]}
    assert mounts["docker-config"] == "/kaniko/.docker"


def test_ci_build_args():
    spec = example_spec()
    spec["ci"]["build_args"] = [{"name": "PIP_INDEX_URL", "value": "https://pypi.example.org/simple"}]
    build = template(by_kind(generate(spec), "WorkflowTemplate", "mnist-ci"), "build")["container"]
    assert "--build-arg=PIP_INDEX_URL=https://pypi.example.org/simple" in build["args"]


@pytest.mark.parametrize("count", [1, 2])
def test_ct_trains_on_gpu_node(count):
    spec = example_spec()
    spec["ct"]["gpu"]["count"] = count
    wft = by_kind(generate(spec), "WorkflowTemplate", "mnist-ct")
    terms = wft["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [{"matchExpressions": [
        {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]}]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in wft["spec"]["tolerations"]
    train = template(wft, "train")
    assert json.loads(train["podSpecPatch"]) == {"runtimeClassName": "nvidia"}
    assert train["container"]["resources"]["limits"] == {"nvidia.com/gpu": str(count)}
    assert train["container"]["image"] == "harbor.lab.example.internal/mlops/mnist:{{inputs.parameters.commit-sha}}"
    assert "--params" in train["container"]["command"]
    assert "/work/src/params.yaml" in train["container"]["command"]
    # only the training step asks for GPUs
    for other in wft["spec"]["templates"]:
        if other["name"] != "train" and "container" in other:
            assert "limits" not in other["container"].get("resources", {})


def test_ct_data_gate_and_lineage(objects):
    wft = by_kind(objects, "WorkflowTemplate", "mnist-ct")
    params = {p["name"]: p.get("value") for p in wft["spec"]["arguments"]["parameters"]}
    assert params == {"revision": None, "ref": "", "data-version": "v1", "threshold": ""}
    fetch = template(wft, "fetch-data")["container"]
    assert env(fetch)["BUCKET"] == "datasets" and env(fetch)["DATASET"] == "mnist"
    assert fetch["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]
    evaluate = env(template(wft, "evaluate")["container"])
    assert evaluate["METRIC"] == "accuracy" and evaluate["SPEC_THRESHOLD"] == "0.9"
    assert evaluate["MODEL_URI"] == "s3://models/mnist/{{inputs.parameters.version}}"
    checkout = template(wft, "checkout")
    globals_ = {p["name"]: p.get("globalName") for p in checkout["outputs"]["parameters"]}
    assert globals_["version"] == "model-version"
    steps = [step[0]["name"] for step in template(wft, "ct")["steps"]]
    assert steps == ["checkout", "fetch-data", "train", "evaluate", "store"]


def test_cd_application_serves_off_gpu(objects):
    app = by_kind(objects, "Application", "mnist-serving")
    assert app["metadata"]["namespace"] == "argocd"
    assert app["spec"]["project"] == "mlops"
    assert app["spec"]["destination"]["namespace"] == "mlops-pipelines"
    source = app["spec"]["source"]
    assert source["path"] == "deploy" and "targetRevision" not in source
    assert set(source["kustomize"]) == {"patches"}  # images/replicas belong to the CD workflow
    patch = json.loads(source["kustomize"]["patches"][0]["patch"])
    pod = patch["spec"]["template"]["spec"]
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"] == [{"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "DoesNotExist"}]}]
    assert pod["imagePullSecrets"] == [{"name": "harbor-ci-robot"}]
    assert env(pod["initContainers"][0])["MODEL_BASE_URI"] == "s3://models/mnist"


def test_cd_workflow(objects):
    wft = by_kind(objects, "WorkflowTemplate", "mnist-cd")
    assert [p["name"] for p in wft["spec"]["arguments"]["parameters"]] == ["model-version"]
    deploy = env(template(wft, "deploy")["container"])
    assert deploy["APPLICATION"] == "mnist-serving" and deploy["ARGOCD_NAMESPACE"] == "argocd"
    smoke = env(template(wft, "smoke")["container"])
    assert json.loads(smoke["SMOKE_BODY"])["instances"][0][2] == 5
    assert smoke["SMOKE_PATH"] == "/predict" and smoke["SERVICE"] == "mnist" and smoke["PORT"] == "8080"


def test_sensors_chain_ci_ct_cd(objects):
    wfts = {o["metadata"]["name"] for o in objects if o["kind"] == "WorkflowTemplate"}
    sources = {o["metadata"]["name"]: o for o in objects if o["kind"] == "EventSource"}
    chain = {}
    for sensor in by_kind(objects, "Sensor"):
        dep = sensor["spec"]["dependencies"][0]
        assert dep["eventSourceName"] in sources
        trigger = sensor["spec"]["triggers"][0]["template"]["argoWorkflow"]
        assert trigger["operation"] == "submit"
        ref = trigger["source"]["resource"]["spec"]["workflowTemplateRef"]["name"]
        assert ref in wfts
        chain[dep["eventName"]] = (ref, [p["src"]["dataKey"] for p in trigger["parameters"]])
        assert sensor["spec"]["template"]["serviceAccountName"] == "mnist-sensor"
    assert chain["push"] == ("mnist-ci", ["body.after", "body.ref"])
    assert chain["ci-completed"][0] == "mnist-ct"
    assert chain["ct-completed"] == ("mnist-cd", ['body.status.outputs.parameters.#(name=="model-version").value'])
    for name in ("mnist-ct", "mnist-cd"):
        data = by_kind(objects, "Sensor", name)["spec"]["dependencies"][0]["filters"]["data"]
        assert data == [{"path": "body.status.phase", "type": "string", "value": ["^Succeeded$"]}]


def test_ci_sensor_ref_filter():
    spec = example_spec()
    spec["repo"]["branches"] = ["main", "release/1.x"]
    sensor = by_kind(generate(spec), "Sensor", "mnist-ci")
    refs = sensor["spec"]["dependencies"][0]["filters"]["data"][0]["value"]
    assert refs == ["^refs/heads/main$", r"^refs/heads/release\/1\.x$", "^refs/tags/.+$"]
    assert re.match(refs[1], "refs/heads/release/1.x") and not re.match(refs[1], "refs/heads/release/1x")
    spec["repo"]["tags"] = False
    sensor = by_kind(generate(spec), "Sensor", "mnist-ci")
    assert "^refs/tags/.+$" not in sensor["spec"]["dependencies"][0]["filters"]["data"][0]["value"]


def test_webhook_eventsource_requires_signature(objects):
    github = by_kind(objects, "EventSource", "mnist-github")["spec"]["github"]["push"]
    assert github["webhookSecret"] == {"name": "mnist-webhook", "key": "secret"}
    assert github["repositories"] == [{"owner": "researchops-lab", "names": ["mnist"]}]
    assert github["webhook"]["endpoint"] == "/mnist"
    assert github["webhook"]["url"] == "https://hooks.lab.example.internal"
    assert github["insecure"] is False


def test_workflow_completion_eventsource(objects):
    resource = by_kind(objects, "EventSource", "mnist-workflows")["spec"]["resource"]
    for stage in ("ci", "ct"):
        watch = resource[f"{stage}-completed"]
        assert watch["eventTypes"] == ["ADD"] and watch["filter"]["afterStart"] is True
        labels = {(s["key"], s["operation"], s["value"]) for s in watch["filter"]["labels"]}
        assert ("researchops.io/stage", "==", stage) in labels
        assert ("workflows.argoproj.io/completed", "==", "true") in labels
        assert ("researchops.io/chain", "!=", "false") in labels
    for wft in by_kind(objects, "WorkflowTemplate"):
        stage = wft["metadata"]["labels"]["researchops.io/stage"]
        assert wft["spec"]["workflowMetadata"]["labels"]["researchops.io/stage"] == stage


def test_rbac_least_privilege(objects):
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]): o["rules"] for o in objects if o["kind"] == "Role"}
    executor = {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]}
    assert roles[("mlops-pipelines", "mnist-ci")] == [executor]
    assert roles[("mlops-pipelines", "mnist-ct")] == [executor]
    assert roles[("argocd", "mnist-cd")] == [{"apiGroups": ["argoproj.io"], "resources": ["applications"],
                                               "resourceNames": ["mnist-serving"], "verbs": ["get", "patch"]}]
    assert {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create", "list"]} in \
        roles[("mlops-pipelines", "mnist-sensor")]
    for rules in roles.values():
        for rule in rules:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
            assert "secrets" not in rule["resources"]
    sas = {o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"}
    assert sas == {f"mnist-{s}" for s in ("ci", "ct", "cd", "sensor", "eventsource")}
    for binding in (o for o in objects if o["kind"] == "RoleBinding"):
        assert binding["subjects"][0]["name"] in sas
        assert (binding["metadata"]["namespace"], binding["roleRef"]["name"]) in roles


def test_pipeline_spec_fills_defaults():
    minimal = {
        "name": "iris",
        "repo": {"url": "git@github.com:lab/iris.git", "credentials_secret": "iris-deploy-key"},
        "ct": {"dataset": {"name": "iris", "version": "2024-01"}, "metric": "f1", "threshold": 0.8},
        "cd": {"smoke": {"body": {"instances": [[1, 2, 3, 4]]}}},
    }
    spec = pipeline_spec([minimal])[0]
    assert spec["repo"]["branches"] == ["main"] and spec["repo"]["tags"] is True
    assert spec["webhook"] == {"secret": {"name": "", "key": "secret"}}
    assert spec["ct"]["gpu"] == {"count": 1}
    assert spec["cd"]["smoke"]["path"] == "/predict"
    objects = pipeline_objects([minimal], platform=platform(), images=images())["iris"]
    github = by_kind(objects, "EventSource", "iris-github")["spec"]["github"]["push"]
    assert github["webhookSecret"]["name"] == "iris-webhook"
    assert github["repositories"] == [{"owner": "lab", "names": ["iris"]}]
    checkout = template(by_kind(objects, "WorkflowTemplate", "iris-ci"), "checkout")
    assert checkout["volumes"][0]["secret"]["secretName"] == "iris-deploy-key"
    assert "GIT_SSH_COMMAND" in env(checkout["container"])


def test_single_spec_and_input_untouched():
    spec = example_spec()
    before = copy.deepcopy(spec)
    assert "mnist" in pipeline_objects(spec, platform=platform(), images=images())
    assert spec == before


def test_subfolder_repo_paths():
    spec = example_spec()
    spec["repo"]["path"] = "models/mnist"
    objects = generate(spec)
    build = template(by_kind(objects, "WorkflowTemplate", "mnist-ci"), "build")["container"]
    assert "--context=dir:///work/src/models/mnist" in build["args"]
    assert "--dockerfile=/work/src/models/mnist/Dockerfile" in build["args"]
    assert by_kind(objects, "Application", "mnist-serving")["spec"]["source"]["path"] == "models/mnist/deploy"


def test_every_step_script_is_valid_shell(objects):
    for wft in by_kind(objects, "WorkflowTemplate"):
        for tmpl in wft["spec"]["templates"]:
            command = tmpl.get("container", {}).get("command", [])
            if command[:2] == ["/bin/sh", "-c"]:
                result = subprocess.run(["sh", "-n", "-c", command[2]], capture_output=True, text=True, check=False)
                assert result.returncode == 0, f"{wft['metadata']['name']}/{tmpl['name']}: {result.stderr}"


def _schema_paths(schema, prefix=""):
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}.{key}" if prefix else key
        yield path
        yield from _schema_paths(sub, path)
        if sub.get("type") == "array" and "properties" in sub.get("items", {}):
            yield from _schema_paths(sub["items"], f"{path}[]")


def test_docs_mention_every_schema_property():
    doc = (REPO_ROOT / "docs" / "pipeline-spec.md").read_text(encoding="utf-8")
    missing = [path for path in _schema_paths(load_schema()) if f"`{path}`" not in doc]
    assert not missing, f"docs/pipeline-spec.md does not document: {missing}"


def test_filter_error_chains_cause():
    spec = example_spec()
    spec["ct"]["gpu"]["count"] = 0
    with pytest.raises(AnsibleFilterError) as caught:
        pipeline_objects([spec], platform=platform(), images=images())
    assert caught.value.__cause__ is not None


def test_example_deploy_manifests_follow_the_serving_contract(objects):
    """examples/mnist/deploy is what the Application deploys: valid, and shaped the way the
    CD workflow and the Application's patch expect."""
    import kubernetes_validate
    import yaml

    deploy = REPO_ROOT / "examples" / "mnist" / "deploy"
    kustomization = yaml.safe_load((deploy / "kustomization.yaml").read_text())
    docs = {}
    for name in kustomization["resources"]:
        doc = yaml.safe_load((deploy / name).read_text())
        kubernetes_validate.validate(doc, "1.34", strict=True)
        docs[doc["kind"]] = doc
    deployment, service = docs["Deployment"], docs["Service"]
    app = by_kind(objects, "Application", "mnist-serving")
    target = app["spec"]["source"]["kustomize"]["patches"][0]["target"]
    assert deployment["metadata"]["name"] == target["name"] == "mnist"
    assert deployment["spec"]["replicas"] == 0
    pod = deployment["spec"]["template"]["spec"]
    assert [c["image"] for c in pod["initContainers"]] == ["s3-tools"]
    assert pod["initContainers"][0]["name"] == "fetch-model"
    assert [c["image"] for c in pod["containers"]] == ["model"]
    version_env = pod["initContainers"][0]["env"][0]
    assert version_env["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.annotations['researchops.io/model-version']"
    cd = env(template(by_kind(objects, "WorkflowTemplate", "mnist-cd"), "smoke")["container"])
    assert service["metadata"]["name"] == cd["SERVICE"]
    assert service["spec"]["ports"][0]["port"] == int(cd["PORT"])


def test_local_inventory_loads_the_example_spec():
    text = (REPO_ROOT / "inventories" / "local" / "group_vars" / "all" / "pipelines.yml").read_text()
    assert "examples/mnist/pipeline.yml" in text and "from_yaml" in text
