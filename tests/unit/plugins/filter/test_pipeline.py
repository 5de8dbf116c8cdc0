"""pipeline_objects / pipeline_spec: the generated objects are valid upstream objects and
carry the behaviour the pipeline promises (GPU scheduling, gate, chaining, RBAC, re-runs)."""
from __future__ import annotations

import copy
import json
import re
import subprocess

import pytest
from ansible.errors import AnsibleFilterError
from pipeline_fixtures import REPO_ROOT, example_spec, images, platform
from pipeline_validation import validate_object, validate_objects

from ansible_collections.researchops.mlops.plugins.filter.pipeline import pipeline_objects, pipeline_spec
from ansible_collections.researchops.mlops.plugins.module_utils.pipeline.spec import load_schema


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
    assert len(objects) == 24
    assert validate_objects(objects, upstream) == []


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


def containers(tmpl):
    return {c["name"]: c for c in tmpl["containerSet"]["containers"]}


def test_ci_builds_training_and_multiarch_serving_images(objects):
    wft = by_kind(objects, "WorkflowTemplate", "mnist-ci")
    assert wft["spec"]["serviceAccountName"] == "mnist-ci"
    params = {p["name"]: p for p in wft["spec"]["arguments"]["parameters"]}
    assert "value" not in params["revision"]  # required on submit
    checkout = template(wft, "checkout")["container"]
    assert checkout["image"] == images()["git"]
    assert env(checkout)["REPO_URL"] == "https://github.com/researchops-lab/mnist.git"
    steps = [[s["name"] for s in group] for group in template(wft, "ci")["steps"]]
    assert steps == [["checkout"], ["build-train", "build-serve-amd64", "build-serve-arm64"],
                     ["serving-manifest-list"], ["start-ct"]]
    repo = "harbor.lab.example.internal/mlops/mnist"
    for name, target, arch, destination in (
            ("build-train", "train", "amd64", f"{repo}:{{{{inputs.parameters.commit-sha}}}}"),
            ("build-serve-amd64", "serve", "amd64", f"{repo}-serve:{{{{inputs.parameters.commit-sha}}}}-amd64"),
            ("build-serve-arm64", "serve", "arm64", f"{repo}-serve:{{{{inputs.parameters.commit-sha}}}}-arm64")):
        build = template(wft, name)
        assert build["nodeSelector"] == {"kubernetes.io/arch": arch}
        parts = containers(build)
        kaniko = parts["build"]
        assert kaniko["image"] == images()["kaniko"] and kaniko["command"] == ["/kaniko/executor"]
        for arg in (f"--target={target}", f"--custom-platform=linux/{arch}", f"--destination={destination}",
                    "--no-push", "--tar-path=/work/image.tar",
                    "--registry-certificate=harbor.lab.example.internal=/etc/researchops/ca/ca.crt"):
            assert arg in kaniko["args"], (name, arg)
        # Kaniko never sees the push credentials; crane (non-root) does.
        assert "registry-push" not in {m["name"] for m in kaniko["volumeMounts"]}
        pushers = [c for c in parts.values() if c["image"] == images()["crane"]]
        assert pushers and all({"name": "registry-push", "mountPath": "/etc/registry-push", "readOnly": True}
                               in c["volumeMounts"] for c in pushers)
        assert ["push", "/work/image.tar", destination] in [c["args"] for c in pushers]
        volumes = {v["name"]: v for v in build["volumes"]}
        assert volumes["registry-push"]["secret"] == {
            "secretName": "harbor-ci-robot", "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}
        assert volumes["platform-ca"]["configMap"]["name"] == "researchops-ca"
        assert "main" in parts
    train_tags = [c["args"] for c in containers(template(wft, "build-train")).values() if c.get("args", [""])[0] == "tag"]
    assert train_tags == [["tag", f"{repo}:{{{{inputs.parameters.commit-sha}}}}", "{{inputs.parameters.version}}"]]
    index = containers(template(wft, "serving-manifest-list"))
    assert index["index"]["args"] == [
        "index", "append", "--tag", f"{repo}-serve:{{{{inputs.parameters.commit-sha}}}}",
        "--manifest", f"{repo}-serve:{{{{inputs.parameters.commit-sha}}}}-amd64",
        "--manifest", f"{repo}-serve:{{{{inputs.parameters.commit-sha}}}}-arm64"]
    assert index["main"]["args"] == ["tag", f"{repo}-serve:{{{{inputs.parameters.commit-sha}}}}",
                                     "{{inputs.parameters.version}}"]


def test_ci_build_args_are_literal_for_the_kubelet():
    spec = example_spec()
    spec["ci"]["build_args"] = [{"name": "PIP_INDEX_URL", "value": "https://pypi.example.org/simple"},
                                {"name": "PRICE", "value": "$(HOME) costs $$5"}]
    build = containers(template(by_kind(generate(spec), "WorkflowTemplate", "mnist-ci"), "build-train"))["build"]
    assert "--build-arg=PIP_INDEX_URL=https://pypi.example.org/simple" in build["args"]
    assert "--build-arg=PRICE=$$(HOME) costs $$$$5" in build["args"]


@pytest.mark.parametrize("count", [1, 2])
def test_ct_trains_on_gpu_node(count):
    spec = example_spec()
    spec["ct"]["gpu"]["count"] = count
    wft = by_kind(generate(spec), "WorkflowTemplate", "mnist-ct")
    terms = wft["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [{"matchExpressions": [
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
        {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]}]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in wft["spec"]["tolerations"]
    train = template(wft, "train")
    assert json.loads(train["podSpecPatch"]) == {"runtimeClassName": "nvidia"}
    assert train["container"]["resources"]["limits"] == {"nvidia.com/gpu": str(count), "memory": "2Gi"}
    assert train["container"]["image"] == "harbor.lab.example.internal/mlops/mnist:{{inputs.parameters.commit-sha}}"
    assert "--params" in train["container"]["command"]
    assert "/work/src/params.yaml" in train["container"]["command"]
    # only the training step asks for GPUs
    for other in wft["spec"]["templates"]:
        if other["name"] != "train" and "container" in other:
            assert "nvidia.com/gpu" not in other["container"].get("resources", {}).get("limits", {})


@pytest.mark.parametrize("gpu", [None, {}, {"count": 0}])
def test_ct_without_gpu_trains_on_cpu(gpu):
    spec = example_spec()
    if gpu is None:
        del spec["ct"]["gpu"]
    else:
        spec["ct"]["gpu"] = gpu
    spec["ct"]["architecture"] = "arm64"
    spec["ci"]["serving_architectures"] = ["arm64"]
    objs = generate(spec)
    wft = by_kind(objs, "WorkflowTemplate", "mnist-ct")
    terms = wft["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [{"matchExpressions": [
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}]}]
    assert "tolerations" not in wft["spec"]
    train = template(wft, "train")
    assert "podSpecPatch" not in train
    assert "nvidia.com/gpu" not in json.dumps(train)
    ci = by_kind(objs, "WorkflowTemplate", "mnist-ci")
    assert template(ci, "build-train")["nodeSelector"] == {"kubernetes.io/arch": "arm64"}


def test_ct_data_gate_and_lineage(objects):
    wft = by_kind(objects, "WorkflowTemplate", "mnist-ct")
    params = {p["name"]: p.get("value") for p in wft["spec"]["arguments"]["parameters"]}
    assert params == {"revision": None, "ref": "", "data-version": "v1", "threshold": "", "chain": "true"}
    fetch = template(wft, "fetch-data")["container"]
    assert env(fetch)["BUCKET"] == "datasets" and env(fetch)["DATASET"] == "mnist"
    assert fetch["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]
    evaluate_script = template(wft, "evaluate")["script"]
    assert evaluate_script["command"] == ["python"] and "def main(env)" in evaluate_script["source"]
    evaluate = env(evaluate_script)
    assert evaluate["METRIC"] == "accuracy" and evaluate["SPEC_THRESHOLD"] == "0.9"
    assert evaluate["MODEL_URI"] == "s3://models/mnist/{{inputs.parameters.version}}"
    checkout = template(wft, "checkout")
    globals_ = {p["name"]: p.get("globalName") for p in checkout["outputs"]["parameters"]}
    assert globals_["version"] == "model-version"
    steps = [step[0]["name"] for step in template(wft, "ct")["steps"]]
    assert steps == ["checkout", "fetch-data", "train", "evaluate", "store", "start-cd"]


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
    assert template(wft, "patch")["container"]["args"][:5] == ["-n", "argocd", "patch", "application", "mnist-serving"]
    smoke = env(template(wft, "smoke")["script"])
    assert json.loads(smoke["SMOKE_BODY"])["instances"][0][2] == 5
    assert smoke["URL"] == "http://mnist.mlops-pipelines.svc.cluster.local:8080/predict"


def test_sensor_starts_ci_only(objects):
    sensor = by_kind(objects, "Sensor")
    assert [o["metadata"]["name"] for o in sensor] == ["mnist-ci"]
    trigger = sensor[0]["spec"]["triggers"][0]
    argo = trigger["template"]["argoWorkflow"]
    assert argo["operation"] == "submit"
    assert argo["source"]["resource"]["spec"]["workflowTemplateRef"]["name"] == "mnist-ci"
    assert [p["src"]["dataKey"] for p in argo["parameters"]] == ["body.after", "body.ref"]
    assert trigger["atLeastOnce"] is True


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
    assert sas == {f"mnist-{s}" for s in ("ci", "ct", "cd", "chain", "sensor", "eventsource")}
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
    assert spec["webhook"] == {"provider": "github", "secret": {"name": "", "key": "secret"}}
    assert spec["ct"]["gpu"] == {"count": 0}
    assert spec["cd"]["smoke"]["path"] == "/predict"
    objects = pipeline_objects([minimal], platform=platform(), images=images())["iris"]
    github = by_kind(objects, "EventSource", "iris-github")["spec"]["github"]["push"]
    assert github["webhookSecret"]["name"] == "iris-webhook"
    assert github["repositories"] == [{"owner": "lab", "names": ["iris"]}]
    checkout = template(by_kind(objects, "WorkflowTemplate", "iris-ci"), "checkout")
    assert checkout["volumes"][1]["secret"]["secretName"] == "iris-deploy-key"
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
    build = containers(template(by_kind(objects, "WorkflowTemplate", "mnist-ci"), "build-serve-arm64"))["build"]
    assert "--context=dir:///work/src/models/mnist" in build["args"]
    assert "--dockerfile=/work/src/models/mnist/Dockerfile" in build["args"]
    assert by_kind(objects, "Application", "mnist-serving")["spec"]["source"]["path"] == "models/mnist/deploy"


def test_every_step_script_is_valid_shell(objects):
    for wft in by_kind(objects, "WorkflowTemplate"):
        for tmpl in wft["spec"]["templates"]:
            for container in [tmpl.get("container", {})] + tmpl.get("containerSet", {}).get("containers", []):
                command = container.get("command", [])
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
    spec["ct"]["gpu"]["count"] = -1
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
    cd = env(template(by_kind(objects, "WorkflowTemplate", "mnist-cd"), "smoke")["script"])
    port = service["spec"]["ports"][0]["port"]
    assert cd["URL"].startswith(f"http://{service['metadata']['name']}.mlops-pipelines.svc.cluster.local:{port}/")


def test_local_inventory_loads_the_example_spec():
    text = (REPO_ROOT / "inventories" / "local" / "group_vars" / "all" / "pipelines.yml").read_text()
    assert "examples/mnist/pipeline.yml" in text and "from_yaml" in text
