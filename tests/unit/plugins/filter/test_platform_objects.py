"""Unit tests of the argocd_helm_app, tls_ingress and backend_tls filters: the objects
they return (validated against the pinned Argo CD and cert-manager CRD schemas, the
ServersTransport subset CRD and the Kubernetes schemas) and one error case per input
check."""
from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.researchops.mlops.plugins.filter.platform_objects import (
    FilterModule,
    argocd_helm_app,
    backend_tls,
    rebind_subjects,
    tls_ingress,
)
from ansible_collections.researchops.mlops.plugins.module_utils.manifest_validation import validator_from_versions

K8S_VERSION = "1.33.0"

APP_ARGS = {
    "repo_url": "https://helm.goharbor.io",
    "chart": "harbor",
    "version": "1.18.2",
    "namespace": "harbor",
}
INGRESS_ARGS = {
    "namespace": "argocd",
    "host": "argocd.lab.example.org",
    "service": "argocd-server",
    "port": 80,
    "issuer": "researchops-ca",
}


def _strict(node):
    """Schema copy where objects with `properties` refuse unknown keys (as the API server prunes them)."""
    if isinstance(node, dict):
        node = {key: _strict(value) for key, value in node.items()}
        if "properties" in node and "additionalProperties" not in node and \
                not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_strict(item) for item in node]
    return node


@pytest.fixture(scope="module")
def application_schema(upstream):
    with open(upstream / "argo-cd/v3.5.1/install.yaml", encoding="utf-8") as handle:
        for doc in yaml.safe_load_all(handle):
            if doc and doc["kind"] == "CustomResourceDefinition" and doc["spec"]["names"]["kind"] == "Application":
                return _strict(copy.deepcopy(doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]))
    pytest.fail("no Application CRD in the pinned Argo CD install.yaml")
    return None


def assert_valid_application(app, schema):
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
              for e in jsonschema.Draft7Validator(schema).iter_errors(app)]
    assert not errors
    # A YAML round trip keeps it identical: plain data only.
    assert yaml.safe_load(yaml.safe_dump(app)) == app


def test_registered_under_their_names():
    filters = FilterModule().filters()
    assert filters["argocd_helm_app"] is argocd_helm_app
    assert filters["tls_ingress"] is tls_ingress
    assert filters["backend_tls"] is backend_tls
    assert filters["rebind_subjects"] is rebind_subjects


def test_helm_application(application_schema):
    values = {"expose": {"type": "clusterIP", "tls": {"enabled": False}}, "core": {"replicas": 1}}
    app = argocd_helm_app("harbor", values=values, **APP_ARGS)
    assert_valid_application(app, application_schema)
    assert app["apiVersion"] == "argoproj.io/v1alpha1"
    assert app["kind"] == "Application"
    assert app["metadata"] == {
        "name": "harbor",
        "namespace": "argocd",
        "labels": {"app.kubernetes.io/managed-by": "researchops.mlops"},
    }
    spec = app["spec"]
    assert spec["project"] == "default"
    assert spec["source"] == {
        "repoURL": "https://helm.goharbor.io",
        "chart": "harbor",
        "targetRevision": "1.18.2",
        "helm": {"releaseName": "harbor", "valuesObject": values},
    }
    assert spec["destination"] == {"server": "https://kubernetes.default.svc", "namespace": "harbor"}
    assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert spec["syncPolicy"]["syncOptions"] == ["CreateNamespace=false", "ServerSideApply=true"]
    assert spec["syncPolicy"]["retry"]["limit"] > 0
    assert "ignoreDifferences" not in spec


def test_values_are_copied_not_shared():
    values = {"a": {"b": [1, 2]}}
    app = argocd_helm_app("x", values=values, **APP_ARGS)
    app["spec"]["source"]["helm"]["valuesObject"]["a"]["b"].append(3)
    assert values == {"a": {"b": [1, 2]}}


def test_helm_application_options(application_schema):
    app = argocd_helm_app(
        "cert-manager", repo_url="oci://quay.io/jetstack/charts", chart="cert-manager", version="v1.21.1",
        namespace="cert-manager", argocd_namespace="gitops", project="platform",
        sync_options=["ServerSideApply=true"], release_name="cm",
        ignore_differences=[{"group": "admissionregistration.k8s.io", "kind": "ValidatingWebhookConfiguration",
                             "jsonPointers": ["/webhooks/0/clientConfig/caBundle"]}],
        labels={"app.kubernetes.io/part-of": "researchops"})
    assert_valid_application(app, application_schema)
    assert app["metadata"]["namespace"] == "gitops"
    assert app["metadata"]["labels"]["app.kubernetes.io/part-of"] == "researchops"
    assert app["spec"]["project"] == "platform"
    assert app["spec"]["source"]["helm"] == {"releaseName": "cm"}
    assert app["spec"]["syncPolicy"]["syncOptions"] == ["ServerSideApply=true"]
    assert app["spec"]["ignoreDifferences"][0]["kind"] == "ValidatingWebhookConfiguration"


def test_chart_from_a_git_commit(application_schema):
    app = argocd_helm_app("csi-driver-nfs", repo_url="https://github.com/kubernetes-csi/csi-driver-nfs.git",
                          chart="csi-driver-nfs", version="4.12.1", namespace="kube-system",
                          path="charts/v4.12.1/csi-driver-nfs", commit="c220ebec63f171bb2e56b3112f9756e1164e47b2",
                          project="mlops-platform")
    assert_valid_application(app, application_schema)
    assert app["spec"]["source"] == {"repoURL": "https://github.com/kubernetes-csi/csi-driver-nfs.git",
                                     "path": "charts/v4.12.1/csi-driver-nfs",
                                     "targetRevision": "c220ebec63f171bb2e56b3112f9756e1164e47b2",
                                     "helm": {"releaseName": "csi-driver-nfs"}}


@pytest.mark.parametrize("extra, message", [
    ({"path": "charts/x"}, "path and commit go together"),
    ({"commit": "c220ebec63f171bb2e56b3112f9756e1164e47b2"}, "path and commit go together"),
    ({"path": "charts/x", "commit": "master"}, "must be a full 40-hex Git commit"),
    ({"path": "charts/x", "commit": "v4.12.1"}, "must be a full 40-hex Git commit"),
    ({"path": "/charts/x", "commit": "c220ebec63f171bb2e56b3112f9756e1164e47b2"}, "relative folder"),
    ({"path": "../x", "commit": "c220ebec63f171bb2e56b3112f9756e1164e47b2"}, "relative folder"),
])
def test_git_source_errors(extra, message):
    with pytest.raises(AnsibleFilterError, match=message):
        argocd_helm_app("x", **APP_ARGS, **extra)


def test_helm_application_is_deterministic():
    assert argocd_helm_app("harbor", values={"b": 1, "a": 2}, **APP_ARGS) == \
        argocd_helm_app("harbor", values={"a": 2, "b": 1}, **APP_ARGS)


@pytest.mark.parametrize("name, kwargs, message", [
    ("Harbor", {}, "name 'Harbor' is not a valid Kubernetes name"),
    ("harbor\n", {}, "is not a valid Kubernetes name"),
    ("", {}, "name must be a non-empty string"),
    ("harbor", {"repo_url": None}, "repo_url is required"),
    ("harbor", {"repo_url": "helm.goharbor.io"}, "must be an http(s):// Helm repository"),
    ("harbor", {"repo_url": " https://helm.goharbor.io"}, "without surrounding spaces"),
    ("harbor", {"chart": "Harbor_Chart"}, "chart 'Harbor_Chart' is not a valid"),
    ("harbor", {"version": "latest"}, "exact chart version"),
    ("harbor", {"version": "^1.18.0"}, "exact chart version"),
    ("harbor", {"version": "1.18"}, "exact chart version"),
    ("harbor", {"version": None}, "version is required"),
    ("harbor", {"namespace": "Harbor"}, "namespace 'Harbor'"),
    ("harbor", {"namespace": None}, "namespace is required"),
    ("harbor", {"argocd_namespace": "argo_cd"}, "argocd_namespace 'argo_cd'"),
    ("harbor", {"project": ""}, "project must be a non-empty string"),
    ("harbor", {"values": ["a"]}, "values must be a mapping"),
    ("harbor", {"values": {"a": {1: "x"}}}, "values.a has a non-string key 1"),
    ("harbor", {"values": {"a": [object()]}}, "values.a[0] holds a object"),
    ("harbor", {"sync_options": "ServerSideApply=true"}, "sync_options must be a list"),
    ("harbor", {"sync_options": ["Prune"]}, "sync_options[0] 'Prune' is not a Key=value"),
    ("harbor", {"release_name": "a" * 54}, "release_name"),
    ("harbor", {"ignore_differences": [{"group": "apps"}]}, "ignore_differences[0] must be a mapping with at least 'kind'"),
    ("harbor", {"labels": {"bad key!": "x"}}, "labels key 'bad key!'"),
    ("harbor", {"labels": {"team": True}}, "labels.team True is not a valid label value"),
])
def test_helm_application_errors(name, kwargs, message):
    args = dict(APP_ARGS)
    args.update(kwargs)
    with pytest.raises(AnsibleFilterError) as err:
        argocd_helm_app(name, **args)
    assert str(err.value).startswith("argocd_helm_app: ")
    assert message in str(err.value)


def test_tls_ingress():
    ingress = tls_ingress("argocd-server", **INGRESS_ARGS)
    kubernetes_validate.validate(ingress, K8S_VERSION, strict=True)
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["metadata"]["namespace"] == "argocd"
    assert ingress["metadata"]["annotations"] == {
        "cert-manager.io/cluster-issuer": "researchops-ca",
        "traefik.ingress.kubernetes.io/router.entrypoints": "websecure",
        "traefik.ingress.kubernetes.io/router.tls": "true",
    }
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "traefik"
    assert spec["tls"] == [{"hosts": ["argocd.lab.example.org"], "secretName": "argocd-server-tls"}]
    assert spec["rules"] == [{
        "host": "argocd.lab.example.org",
        "http": {"paths": [{
            "path": "/",
            "pathType": "Prefix",
            "backend": {"service": {"name": "argocd-server", "port": {"number": 80}}},
        }]},
    }]


def test_tls_ingress_options():
    ingress = tls_ingress(
        "mnist-webhook", namespace="mlops-pipelines", host="hooks.lab.example.org", service="mnist-eventsource-svc",
        port="http", issuer="letsencrypt", path="/mnist", path_type="Exact",
        annotations={"traefik.ingress.kubernetes.io/router.middlewares": "kube-system-ratelimit@kubernetescrd",
                     "traefik.ingress.kubernetes.io/router.entrypoints": "websecure,web"},
        labels={"researchops.io/pipeline": "mnist"})
    kubernetes_validate.validate(ingress, K8S_VERSION, strict=True)
    annotations = ingress["metadata"]["annotations"]
    assert annotations["traefik.ingress.kubernetes.io/router.entrypoints"] == "websecure,web"
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert ingress["metadata"]["labels"]["researchops.io/pipeline"] == "mnist"
    path = ingress["spec"]["rules"][0]["http"]["paths"][0]
    assert path == {"path": "/mnist", "pathType": "Exact",
                    "backend": {"service": {"name": "mnist-eventsource-svc", "port": {"name": "http"}}}}


def test_tls_ingress_secret():
    ingress = tls_ingress("argocd-server", **INGRESS_ARGS, secret="argocd-ui-tls")
    assert ingress["spec"]["tls"][0]["secretName"] == "argocd-ui-tls"
    with pytest.raises(AnsibleFilterError, match="tls_ingress: secret 'Bad_secret'"):
        tls_ingress("argocd-server", **INGRESS_ARGS, secret="Bad_secret")


def test_tls_ingress_numeric_port_string():
    ingress = tls_ingress("s3", **{**INGRESS_ARGS, "port": "3900"})
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] == {"number": 3900}


@pytest.mark.parametrize("name, kwargs, message", [
    ("Argo", {}, "name 'Argo' is not a valid"),
    ("argocd", {"namespace": None}, "namespace is required"),
    ("argocd", {"namespace": "Argo CD"}, "namespace 'Argo CD'"),
    ("argocd", {"host": "argocd"}, "fully qualified"),
    ("argocd", {"host": "ArgoCD.example.org"}, "fully qualified"),
    ("argocd", {"host": "argocd.example.org\n"}, "fully qualified"),
    ("argocd", {"host": "https://argocd.example.org"}, "fully qualified"),
    ("argocd", {"service": "argocd_server"}, "service 'argocd_server'"),
    ("argocd", {"port": 0}, "port 0 is outside 1-65535"),
    ("argocd", {"port": 70000}, "port 70000 is outside"),
    ("argocd", {"port": True}, "port must be a port number or a port name"),
    ("argocd", {"port": "HTTP"}, "port must be a port number or a port name"),
    ("argocd", {"port": None}, "port is required"),
    ("argocd", {"issuer": ""}, "issuer must be a non-empty string"),
    ("argocd", {"path": "api"}, "path must be an absolute URL path"),
    ("argocd", {"path_type": "prefix"}, "path_type must be one of"),
    ("argocd", {"annotations": ["a"]}, "annotations must be a mapping"),
    ("argocd", {"annotations": {"a": 1}}, "annotations.a must be a string"),
    ("argocd", {"annotations": {"bad key": "x"}}, "annotations key 'bad key'"),
    ("argocd", {"labels": "x"}, "labels must be a mapping"),
])
def test_tls_ingress_errors(name, kwargs, message):
    args = dict(INGRESS_ARGS)
    args.update(kwargs)
    with pytest.raises(AnsibleFilterError) as err:
        tls_ingress(name, **args)
    assert str(err.value).startswith("tls_ingress: ")
    assert message in str(err.value)


def test_rebind_subjects_moves_only_upstream_service_accounts():
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "argocd-server"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "argocd-server"},
        "subjects": [
            {"kind": "ServiceAccount", "name": "argocd-server", "namespace": "argocd"},
            {"kind": "ServiceAccount", "name": "other", "namespace": "kube-system"},
            {"kind": "Group", "name": "admins", "apiGroup": "rbac.authorization.k8s.io"},
        ],
    }
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "subjects": "not a binding"}
    before = copy.deepcopy([binding, config])
    out = rebind_subjects([binding, config], from_namespace="argocd", to_namespace="gitops")
    assert [binding, config] == before
    assert out[1] is config
    assert out[0]["subjects"] == [
        {"kind": "ServiceAccount", "name": "argocd-server", "namespace": "gitops"},
        {"kind": "ServiceAccount", "name": "other", "namespace": "kube-system"},
        {"kind": "Group", "name": "admins", "apiGroup": "rbac.authorization.k8s.io"},
    ]


@pytest.mark.parametrize("objects, kwargs, message", [
    ({"kind": "RoleBinding"}, {"from_namespace": "a", "to_namespace": "b"}, "_input must be a list"),
    (["x"], {"from_namespace": "a", "to_namespace": "b"}, "_input[0] must be a Kubernetes object"),
    ([], {"from_namespace": "a"}, "from_namespace and to_namespace are required"),
    ([], {"from_namespace": "A", "to_namespace": "b"}, "from_namespace 'A'"),
    ([{"kind": "RoleBinding", "subjects": {"a": 1}}], {"from_namespace": "a", "to_namespace": "b"},
     "_input[0].subjects must be a list"),
])
def test_rebind_subjects_errors(objects, kwargs, message):
    with pytest.raises(AnsibleFilterError) as err:
        rebind_subjects(objects, **kwargs)
    assert str(err.value).startswith("rebind_subjects: ")
    assert message in str(err.value)


def test_spec_filters_and_preflight_use_the_one_definition():
    """module_utils/names.py is the one definition (tested in module_utils/test_names.py)."""
    from ansible_collections.researchops.mlops.plugins.filter import platform_objects
    from ansible_collections.researchops.mlops.plugins.module_utils import names
    from ansible_collections.researchops.mlops.plugins.module_utils.pipeline import spec
    from ansible_collections.researchops.mlops.plugins.plugin_utils import preflight

    for module in (spec, platform_objects, preflight):
        assert module.DNS1123_LABEL is names.DNS1123_LABEL and module.DNS1123_SUBDOMAIN is names.DNS1123_SUBDOMAIN
    assert spec.SERVER_HOST is names.SERVER_HOST and platform_objects.INGRESS_HOST is names.INGRESS_HOST
    assert spec.S3_BUCKET is preflight.S3_BUCKET is names.S3_BUCKET
    assert spec.HARBOR_PROJECT is preflight.HARBOR_PROJECT is names.HARBOR_PROJECT


# ---------------------------------------------------------------- backend_tls
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "argo-server", "namespace": "argo"},
           "spec": {"ports": [{"name": "web", "port": 2746, "targetPort": 2746}], "selector": {"app": "argo-server"}}}
BACKEND_ARGS = {"service": "argo-server", "namespace": "argo", "issuer": "researchops-ca", "secret": "argo-server-backend-tls"}


@pytest.fixture(scope="module")
def crd_validator(upstream):
    """The render's validator (cert-manager CRDs, the ServersTransport subset CRD)."""
    versions = yaml.safe_load((Path(__file__).resolve().parents[4] / "roles/mlops/defaults/main/versions.yml").read_text())
    return validator_from_versions(versions, str(upstream))


def test_backend_tls(crd_validator):
    """Traefik's Ingress provider reads serversscheme/serverstransport from the backend
    Service (traefik pkg/provider/kubernetes/ingress/annotations.go); a CRD
    ServersTransport is <namespace>-<name>@kubernetescrd (crd/kubernetes.go makeID)."""
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "argo"}}
    objects = backend_tls([SERVICE, other], **BACKEND_ARGS, labels={"app.kubernetes.io/part-of": "researchops"})
    service, config_map, certificate, transport = objects
    assert config_map == other and "annotations" not in SERVICE["metadata"]  # input untouched
    assert service["metadata"]["annotations"] == {
        "traefik.ingress.kubernetes.io/service.serversscheme": "https",
        "traefik.ingress.kubernetes.io/service.serverstransport": "argo-argo-server@kubernetescrd",
    }
    assert certificate["spec"]["secretName"] == "argo-server-backend-tls"
    assert certificate["spec"]["issuerRef"] == {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "researchops-ca"}
    assert transport["metadata"] == {"name": "argo-server", "namespace": "argo", "labels": {
        "app.kubernetes.io/managed-by": "researchops.mlops", "app.kubernetes.io/part-of": "researchops"}}
    assert transport["spec"] == {"serverName": "argo-server.argo.svc", "rootCAsSecrets": ["argo-server-backend-tls"]}
    assert transport["spec"]["serverName"] in certificate["spec"]["dnsNames"]
    for obj in (service, certificate, transport):
        assert [str(issue) for issue in crd_validator.validate(obj, "backend_tls")] == []
    assert yaml.safe_load(yaml.safe_dump(objects)) == objects


def test_backend_tls_without_traefik():
    objects = backend_tls([SERVICE], **BACKEND_ARGS, traefik=False)
    assert [o["kind"] for o in objects] == ["Service", "Certificate"]
    assert objects[0] is SERVICE


def test_the_servers_transport_subset_refuses_fields_of_later_traefik(crd_validator):
    """rootCAs exists from Traefik v3.4 on (chart v35.4.0), not in v3.3 (chart v34.2.0)."""
    transport = backend_tls([SERVICE], **BACKEND_ARGS)[-1]
    transport["spec"]["rootCAs"] = [{"secret": "argo-server-backend-tls"}]
    issues = crd_validator.validate(transport, "seed")
    assert len(issues) == 1 and "rootCAs" in issues[0]["message"]


@pytest.mark.parametrize("objects, kwargs, message", [
    ([SERVICE], {"service": None}, "service is required"),
    ([SERVICE], {"service": "argo_server"}, "service 'argo_server'"),
    ([SERVICE], {"namespace": "Argo"}, "namespace 'Argo'"),
    ([SERVICE], {"issuer": ""}, "issuer must be a non-empty string"),
    ([SERVICE], {"secret": None}, "secret is required"),
    ([SERVICE], {"traefik": "yes"}, "traefik must be a boolean"),
    ([SERVICE], {"labels": {"a": 1}}, "labels.a"),
    ([SERVICE], {"service": "argocd-server"}, "no Service named 'argocd-server'"),
    ([dict(SERVICE, metadata={"name": "argo-server", "namespace": "other"})], {}, "not 'argo'"),
    (SERVICE, {}, "_input must be a list"),
    (["x"], {}, "_input[0] must be a Kubernetes object"),
])
def test_backend_tls_errors(objects, kwargs, message):
    args = dict(BACKEND_ARGS)
    args.update(kwargs)
    with pytest.raises(AnsibleFilterError) as err:
        backend_tls(objects, **args)
    assert str(err.value).startswith("backend_tls: ")
    assert message in str(err.value)
