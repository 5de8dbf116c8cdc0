"""Render tests of the argocd, object_storage, argo_workflows and argo_events roles: the
local inventory rendered through the real sink, every object validated strictly (core
kinds with kubernetes-validate, Argo CD kinds with the pinned CRD schemas, the EventBus
and the Argo Workflows controller settings with the pinned JSON schemas), then what the
roles promise: pinned images, namespaces, TLS Ingresses, client auth, S3 wiring, a
namespace layout other than the default, the external object store, and the errors."""
from __future__ import annotations

import json
import subprocess
from functools import lru_cache
from pathlib import Path

import jsonschema
import pytest
import yaml

from ansible_collections.researchops.mlops.plugins.module_utils import manifest_validation

pytestmark = pytest.mark.slow

VERSIONS = Path(__file__).resolve().parents[2] / "roles" / "mlops" / "defaults" / "main" / "versions.yml"
TAGS = "argocd,object_storage,argo_workflows,argo_events"
COMPONENTS = ("argocd", "argocd_server_tls", "object_storage", "argo_workflows", "argo_events")
DEFAULT_NS = {
    "argocd": "argocd", "argo_workflows": "argo", "argo_events": "argo-events", "cert_manager": "cert-manager",
    "harbor": "harbor", "postgresql": "postgresql", "object_storage": "object-storage", "storage": "kube-system",
    "gpu": "kube-system", "pipelines": "mlops-pipelines",
}


def render(repo_root, env, out, extra=None, check=True):
    cmd = [str(Path(env["PATH"].split(":")[0]) / "ansible-playbook"), "playbooks/platform.yml",
           "-i", "inventories/local", "--tags", TAGS, "-e", f"mlops_render_dir={out}"]
    if extra:
        cmd += ["-e", json.dumps(extra)]
    result = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True, timeout=600, check=False)
    if check:
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return result


def load(out):
    objects = {}
    for component in COMPONENTS:
        folder = Path(out) / "platform" / component
        objects[component] = [yaml.safe_load(path.read_text()) for path in sorted(folder.glob("*.yaml"))
                              if path.name != "kustomization.yaml"]
    return objects


def find(objects, kind, name):
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind} {name}: {len(matches)} found"
    return matches[0]


@lru_cache(maxsize=None)
def validator(upstream):
    """The collection's strict validator, built from versions.yml like playbooks/validate.yml."""
    return manifest_validation.validator_from_versions(yaml.safe_load(VERSIONS.read_text(encoding="utf-8")), str(upstream))


@lru_cache(maxsize=None)
def definitions(schema_json):
    with open(schema_json, encoding="utf-8") as handle:
        return manifest_validation.argo_definitions(json.load(handle))


def schema_errors(obj, schema_json, ref):
    root = {"$ref": f"#/definitions/{ref}", "definitions": definitions(schema_json)}
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in jsonschema.Draft7Validator(root).iter_errors(obj)]


def validate(obj, upstream):
    return [f"{issue['path']}: {issue['message']}" for issue in validator(str(upstream)).validate(obj)]


@pytest.fixture(scope="module")
def rendered(repo_root, ansible_env, tmp_path_factory):
    out = tmp_path_factory.mktemp("render-default")
    render(repo_root, ansible_env, out)
    return load(out)


@pytest.fixture(scope="module")
def renamed(repo_root, ansible_env, tmp_path_factory):
    out = tmp_path_factory.mktemp("render-renamed")
    namespaces = dict(DEFAULT_NS, argocd="gitops", argo_workflows="workflows", argo_events="events",
                      object_storage="s3store", pipelines="ml")
    render(repo_root, ansible_env, out, {"mlops_namespaces": namespaces})
    return load(out), namespaces


def test_every_object_validates(rendered, upstream):
    errors = {}
    for objects in rendered.values():
        for obj in objects:
            problems = validate(obj, upstream)
            if problems:
                errors[f"{obj['kind']} {obj['metadata'].get('namespace')}/{obj['metadata']['name']}"] = problems
    assert not errors


def test_no_namespace_objects_and_every_namespaced_object_has_one(rendered):
    cluster_kinds = {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "PriorityClass"}
    for objects in rendered.values():
        assert objects
        for obj in objects:
            assert obj["kind"] != "Namespace"
            if obj["kind"] in cluster_kinds:
                assert "namespace" not in obj["metadata"]
            else:
                assert obj["metadata"].get("namespace") in DEFAULT_NS.values(), obj["metadata"]


def containers(obj):
    spec = obj["spec"]["template"]["spec"] if obj["kind"] != "CronJob" else obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def test_every_image_is_pinned(rendered):
    images = set()
    for objects in rendered.values():
        for obj in objects:
            if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
                images.update(c["image"] for c in containers(obj))
    assert images
    for image in images:
        tag = image.rsplit("/", 1)[-1]
        assert ":" in tag and not tag.endswith(":latest"), image
    wf = rendered["argo_workflows"]
    args = find(wf, "Deployment", "workflow-controller")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["--executor-image", "quay.io/argoproj/argoexec:v4.1.2"]


def test_argocd(rendered):
    objects = rendered["argocd"]
    assert find(objects, "ConfigMap", "argocd-cmd-params-cm")["data"]["server.insecure"] == "false"
    assert find(objects, "ConfigMap", "argocd-cm")["data"]["url"] == "https://argocd.lab.example.internal"
    # Upstream keys of argocd-cm are kept.
    assert "resource.exclusions" in find(objects, "ConfigMap", "argocd-cm")["data"]
    ingress = find(objects, "Ingress", "argocd-server")
    assert ingress["spec"]["rules"][0]["host"] == "argocd.lab.example.internal"
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"] == {"name": "argocd-server", "port": {"number": 443}}
    # argocd-server-tls is the server's own certificate (Argo CD reads that name).
    assert ingress["spec"]["tls"][0]["secretName"] == "argocd-ui-tls"
    # Its Certificate comes once cert-manager runs (entry point server_tls), alone.
    assert [o["kind"] for o in rendered["argocd_server_tls"]] == ["Certificate"]
    assert find(rendered["argocd_server_tls"], "Certificate", "argocd-server-backend")["spec"]["secretName"] == "argocd-server-tls"
    project = find(objects, "AppProject", "mlops")
    assert project["spec"]["destinations"] == [{"server": "https://kubernetes.default.svc", "namespace": "mlops-pipelines"}]
    assert project["spec"]["sourceRepos"] == ["https://github.com/researchops-lab/mnist.git"]
    assert project["spec"]["clusterResourceWhitelist"] == []
    repos = {o["stringData"]["url"]: o for o in objects if o["kind"] == "Secret"
             and o["metadata"].get("labels", {}).get("argocd.argoproj.io/secret-type") == "repository"}
    assert set(repos) == {"https://charts.jetstack.io", "https://helm.goharbor.io",
                          "https://github.com/kubernetes-csi/csi-driver-nfs.git"}
    assert repos["https://github.com/kubernetes-csi/csi-driver-nfs.git"]["stringData"]["type"] == "git"
    platform = find(objects, "AppProject", "mlops-platform")
    assert sorted(platform["spec"]["sourceRepos"]) == sorted(repos)
    assert {d["namespace"] for d in platform["spec"]["destinations"]} == {"cert-manager", "harbor", "kube-system"}
    assert all(set(r["stringData"]) == {"name", "url", "type"} for r in repos.values())


def test_argo_workflows_server_and_controller_settings(rendered, upstream):
    objects = rendered["argo_workflows"]
    server = find(objects, "Deployment", "argo-server")["spec"]["template"]["spec"]["containers"][0]
    assert server["args"] == ["server", "--auth-mode=client", "--secure=true",
                              "--tls-certificate-secret-name=argo-server-backend-tls"]
    assert server["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    ingress = find(objects, "Ingress", "argo-server")
    assert ingress["spec"]["rules"][0]["host"] == "argo.lab.example.internal"
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] == {"number": 2746}
    data = find(objects, "ConfigMap", "workflow-controller-configmap")["data"]
    schema = str(upstream / "argo-workflows/v4.1.2/schema.json")
    repository = yaml.safe_load(data["artifactRepository"])
    assert not schema_errors(repository, schema, "io.argoproj.workflow.v1alpha1.ArtifactRepository")
    assert repository["s3"]["endpoint"] == "s3.object-storage.svc.cluster.local"
    assert repository["s3"]["insecure"] is True
    assert repository["s3"]["bucket"] == "workflow-artifacts"
    assert repository["s3"]["accessKeySecret"] == {"name": "s3-credentials", "key": "AWS_ACCESS_KEY_ID"}
    assert repository["s3"]["keyFormat"] == "{{workflow.namespace}}/{{workflow.name}}/{{pod.name}}"
    defaults = yaml.safe_load(data["workflowDefaults"])
    assert not schema_errors(defaults["spec"], schema, "io.argoproj.workflow.v1alpha1.WorkflowSpec")
    assert defaults["spec"]["podGC"] == {"strategy": "OnPodSuccess", "deleteDelayDuration": "10m"}
    assert defaults["spec"]["ttlStrategy"] == {"secondsAfterSuccess": 86400, "secondsAfterFailure": 604800}
    assert defaults["spec"]["retryStrategy"]["limit"] == "2"
    assert defaults["spec"]["retryStrategy"]["backoff"] == {"duration": "30s", "factor": "2", "maxDuration": "10m"}
    assert "sso" not in data


def test_server_tls_off_is_plain_http_as_before(repo_root, ansible_env, tmp_path):
    """argo_workflows_server_tls / argocd_server_tls false: no certificate, no
    ServersTransport, no Traefik annotation; the servers run without TLS."""
    render(repo_root, ansible_env, tmp_path, {"argo_workflows_server_tls": False, "argocd_server_tls": False})
    objects = load(tmp_path)
    server = find(objects["argo_workflows"], "Deployment", "argo-server")["spec"]["template"]["spec"]["containers"][0]
    assert server["args"] == ["server", "--auth-mode=client", "--secure=false"]
    assert server["readinessProbe"]["httpGet"]["scheme"] == "HTTP"
    assert find(objects["argocd"], "ConfigMap", "argocd-cmd-params-cm")["data"]["server.insecure"] == "true"
    assert objects["argocd_server_tls"] == []
    for component, service in (("argo_workflows", "argo-server"), ("argocd", "argocd-server")):
        assert not [o for o in objects[component] if o["kind"] in ("Certificate", "ServersTransport")]
        assert not find(objects[component], "Service", service)["metadata"].get("annotations")


def test_argo_workflows_rbac(rendered):
    objects = rendered["argo_workflows"]
    role = find(objects, "Role", "argo-workflow-executor")
    assert role["metadata"]["namespace"] == "mlops-pipelines"
    assert {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]} in role["rules"]
    binding = find(objects, "RoleBinding", "argo-workflow-executor")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "workflow-executor", "namespace": "mlops-pipelines"}]
    # People: namespace-scoped Roles and token-login accounts, no standing token Secret,
    # nothing cluster-wide (issue 9).
    assert not [o for o in objects if o["kind"] == "Secret"]
    assert not [o for o in objects if o["metadata"]["name"].startswith("argo-ui") and o["kind"].startswith("Cluster")]
    for account, role in (("argo-ui-submitter", "argo-workflows-submit"), ("argo-ui-viewer", "argo-workflows-view")):
        binding = find(objects, "RoleBinding", account)
        assert binding["metadata"]["namespace"] == "mlops-pipelines"
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role}
    view = find(objects, "Role", "argo-workflows-view")
    assert {verb for rule in view["rules"] for verb in rule["verbs"]} == {"get", "list", "watch"}
    assert not [rule for rule in view["rules"] + find(objects, "Role", "argo-workflows-submit")["rules"]
                if "secrets" in rule["resources"]]


def test_argo_events_eventbus(rendered):
    objects = rendered["argo_events"]
    bus = find(objects, "EventBus", "default")
    assert bus["metadata"]["namespace"] == "mlops-pipelines"
    assert bus["spec"]["jetstream"]["version"] == "2.10.29"
    assert bus["spec"]["jetstream"]["replicas"] == 3
    controller = find(objects, "Deployment", "controller-manager")["spec"]["template"]["spec"]["containers"][0]
    assert controller["image"] == "quay.io/argoproj/argo-events:v1.9.11"


def test_one_pod_eventbus_gets_one_stream_replica(repo_root, ansible_env, tmp_path):
    render(repo_root, ansible_env, tmp_path, {"argo_events_eventbus_replicas": 1})
    bus = find(load(tmp_path)["argo_events"], "EventBus", "default")
    assert bus["spec"]["jetstream"]["replicas"] == 1
    assert yaml.safe_load(bus["spec"]["jetstream"]["streamConfig"]) == {"maxAge": "72h", "maxMsgs": 100000, "replicas": 1}


def test_object_storage_garage(rendered):
    objects = rendered["object_storage"]
    service = find(objects, "Service", "s3")
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "s3"}]
    sts = find(objects, "StatefulSet", "garage")
    pod = sts["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert [c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]] == ["meta", "data"]
    assert sts["spec"]["volumeClaimTemplates"][1]["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert "storageClassName" not in sts["spec"]["volumeClaimTemplates"][1]["spec"]
    job = next(o for o in objects if o["kind"] == "Job")
    assert job["metadata"]["name"].startswith("garage-setup-")
    assert job["metadata"]["annotations"]["researchops.io/creates-secrets"] == (
        "object-storage/garage-internal,object-storage/s3-credentials,argo/s3-credentials,mlops-pipelines/s3-credentials")
    config = json.loads(job["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"])
    assert config["buckets"] == ["datasets", "models", "workflow-artifacts"]
    assert not [o for o in objects if o["kind"] == "Secret"]
    toml = find(objects, "ConfigMap", "garage")["data"]["garage.toml"]
    assert 'db_engine = "lmdb"' in toml and "rpc_secret" not in toml.split("\n", 3)[-1]


def test_other_namespaces_rebind_every_subject(renamed):
    objects, namespaces = renamed
    upstream_names = {"argocd", "argo", "argo-events", "object-storage", "mlops-pipelines"}
    for component_objects in objects.values():
        for obj in component_objects:
            assert obj["metadata"].get("namespace") not in upstream_names, obj["metadata"]
            for subject in obj.get("subjects") or []:
                if subject["kind"] == "ServiceAccount":
                    assert subject["namespace"] in namespaces.values(), (obj["metadata"]["name"], subject)
                    assert subject["namespace"] not in upstream_names
    crb = find(objects["argocd"], "ClusterRoleBinding", "argocd-server")
    assert crb["subjects"][0]["namespace"] == "gitops"
    wf_crb = find(objects["argo_workflows"], "ClusterRoleBinding", "argo-binding")
    assert wf_crb["subjects"][0]["namespace"] == "workflows"
    repository = yaml.safe_load(find(objects["argo_workflows"], "ConfigMap", "workflow-controller-configmap")
                                ["data"]["artifactRepository"])
    assert repository["s3"]["endpoint"] == "s3.s3store.svc.cluster.local"
    assert find(objects["argo_events"], "EventBus", "default")["metadata"]["namespace"] == "ml"
    assert find(objects["argocd"], "AppProject", "mlops")["spec"]["destinations"][0]["namespace"] == "ml"


def test_external_object_store_renders_no_server_and_no_secret(repo_root, ansible_env, tmp_path):
    key_id, secret = "GOOG1EXAMPLEACCESSKEY", "external-secret-value-never-rendered"
    render(repo_root, ansible_env, tmp_path, {
        "object_storage_mode": "external", "mlops_s3_endpoint": "https://storage.googleapis.com",
        "mlops_s3_region": "auto", "object_storage_external_access_key_id": key_id,
        "object_storage_external_secret_access_key": secret})
    objects = load(tmp_path)
    assert objects["object_storage"] == []
    for path in tmp_path.rglob("*.yaml"):
        text = path.read_text()
        assert secret not in text and key_id not in text, path
    repository = yaml.safe_load(find(objects["argo_workflows"], "ConfigMap", "workflow-controller-configmap")
                                ["data"]["artifactRepository"])
    assert repository["s3"]["endpoint"] == "storage.googleapis.com"
    assert repository["s3"]["insecure"] is False
    assert repository["s3"]["region"] == "auto"


@pytest.mark.parametrize("extra, message", [
    ({"object_storage_mode": "external", "mlops_s3_endpoint": "https://storage.googleapis.com"},
     "object_storage_mode is external: set object_storage_external_access_key_id"),
    ({"object_storage_mode": "in_cluster", "mlops_s3_endpoint": "https://s3.example.org"},
     "in in_cluster mode mlops_s3_endpoint must be the Service this role serves"),
    ({"argo_events_eventbus_version": "latest"}, "argo_events_eventbus_version must be a pinned JetStream version"),
    ({"argo_events_eventbus_version": "2.99.0"}, "2.10.29"),
    ({"argo_events_eventbus_replicas": 2}, "argo_events_eventbus_replicas must be 1"),
    ({"argocd_cmd_params": {"server.basehref": 1}}, "values of argocd_cmd_params"),
    ({"argo_workflows_sso_enabled": True}, "argo_workflows_sso_enabled is true: set argo_workflows_sso_issuer"),
    ({"mlops_s3_buckets": {"datasets": "Datasets", "models": "models", "artifacts": "a"}}, "bucket names"),
])
def test_bad_settings_fail_with_a_message(repo_root, ansible_env, tmp_path, extra, message):
    result = render(repo_root, ansible_env, tmp_path, extra, check=False)
    assert result.returncode != 0
    assert message in " ".join((result.stdout + result.stderr).split())
