# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Objects every platform component builds the same way: an Argo CD Application of a
pinned Helm chart, a TLS Ingress for k3s's Traefik, TLS from Traefik to the backend, and
upstream bindings moved to the namespace the platform installs a component in."""

from __future__ import annotations

# Documentation of the filters: argocd_helm_app.yml, tls_ingress.yml, backend_tls.yml and
# rebind_subjects.yml beside this file.
import re
from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError

# Names and hosts: module_utils/names.py (an Ingress host may be a wildcard, never has a port).
from ansible_collections.researchops.mlops.plugins.module_utils.names import DNS1123_LABEL, DNS1123_SUBDOMAIN, INGRESS_HOST

APP_API_VERSION = "argoproj.io/v1alpha1"
IN_CLUSTER = "https://kubernetes.default.svc"
DEFAULT_SYNC_OPTIONS = ("CreateNamespace=false", "ServerSideApply=true")
RETRY = {"limit": 10, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"}}
INGRESS_CLASS = "traefik"
ISSUER_ANNOTATION = "cert-manager.io/cluster-issuer"
ENTRYPOINTS_ANNOTATION = "traefik.ingress.kubernetes.io/router.entrypoints"
ROUTER_TLS_ANNOTATION = "traefik.ingress.kubernetes.io/router.tls"
# Service annotations of Traefik's Kubernetes Ingress provider (traefik/traefik
# pkg/provider/kubernetes/ingress/annotations.go, ServiceIng: serversScheme,
# serversTransport); a ServersTransport of the kubernetesCRD provider is named
# <namespace>-<name>@kubernetescrd (pkg/provider/kubernetes/crd/kubernetes.go, makeID).
SERVERS_SCHEME_ANNOTATION = "traefik.ingress.kubernetes.io/service.serversscheme"
SERVERS_TRANSPORT_ANNOTATION = "traefik.ingress.kubernetes.io/service.serverstransport"
TRAEFIK_API_VERSION = "traefik.io/v1alpha1"
CLUSTER_DOMAIN = "cluster.local"
MANAGED_BY = {"app.kubernetes.io/managed-by": "researchops.mlops"}
PATH_TYPES = ("Prefix", "Exact", "ImplementationSpecific")

_PORT_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\Z")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?\Z")
_COMMIT = re.compile(r"^[0-9a-f]{40}\Z")
_SYNC_OPTION = re.compile(r"^[A-Za-z][A-Za-z0-9]*=\S+\Z")
# An exact chart version: SemVer 2 with an optional leading "v"; no ranges or wildcards.
_CHART_VERSION = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?\Z"
)


def _fail(filter_name, message):
    raise AnsibleFilterError(f"{filter_name}: {message}")


def _name(filter_name, field, value, pattern=DNS1123_LABEL, max_len=63):
    if not isinstance(value, str) or not value:
        _fail(filter_name, f"{field} must be a non-empty string, got {value!r}")
    if len(value) > max_len or not pattern.match(value):
        _fail(filter_name, f"{field} {value!r} is not a valid Kubernetes name "
                           f"(lowercase letters, digits and '-', at most {max_len} characters)")
    return value


def _text(filter_name, field, value):
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        _fail(filter_name, f"{field} must be a non-empty string without surrounding spaces, got {value!r}")
    return value


def _labels(filter_name, field, value):
    if not isinstance(value, Mapping):
        _fail(filter_name, f"{field} must be a mapping, got {value!r}")
    for key, item in value.items():
        if not isinstance(key, str) or not _LABEL_KEY.match(key):
            _fail(filter_name, f"{field} key {key!r} is not a valid label key")
        if not isinstance(item, str) or len(item) > 63 or not _LABEL_VALUE.match(item):
            _fail(filter_name, f"{field}.{key} {item!r} is not a valid label value")
    return dict(value)


def _list(filter_name, field, value):
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        _fail(filter_name, f"{field} must be a list, got {value!r}")
    return list(value)


def _plain(filter_name, field, value):
    """Deep-copy `value` into plain dict/list/scalars, refusing what YAML cannot hold."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                _fail(filter_name, f"{field} has a non-string key {key!r}")
            out[key] = _plain(filter_name, f"{field}.{key}", item)
        return out
    if isinstance(value, (str, bytes)):
        return value.decode() if isinstance(value, bytes) else str(value)
    if isinstance(value, Sequence):
        return [_plain(filter_name, f"{field}[{index}]", item) for index, item in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    _fail(filter_name, f"{field} holds a {type(value).__name__} ({value!r}), not a YAML value")
    return None  # unreachable: _fail raises


def argocd_helm_app(name, repo_url=None, chart=None, version=None, namespace=None, values=None,
                    argocd_namespace="argocd", project="default", sync_options=DEFAULT_SYNC_OPTIONS,
                    release_name=None, ignore_differences=(), labels=None, path=None, commit=None):
    """Return an Argo CD Application installing `chart` at `version` into `namespace`
    (from a Helm repository), or the chart folder `path` of Git repository `repo_url` at
    `commit` (an immutable source: a commit cannot move like a branch or a tag)."""
    filt = "argocd_helm_app"
    _name(filt, "name", name, DNS1123_LABEL, 63)
    for field, value in (("repo_url", repo_url), ("chart", chart), ("version", version), ("namespace", namespace)):
        if value is None:
            _fail(filt, f"{field} is required")
    repo_url = _text(filt, "repo_url", repo_url)
    if not re.match(r"^(https?|oci)://[^\s/]+", repo_url):
        _fail(filt, f"repo_url {repo_url!r} must be an http(s):// Helm repository or an oci:// registry")
    _name(filt, "chart", chart, DNS1123_LABEL, 63)
    version = _text(filt, "version", str(version) if isinstance(version, (int, float)) and not isinstance(version, bool) else version)
    if not _CHART_VERSION.match(version):
        _fail(filt, f"version {version!r} must be an exact chart version (SemVer like 1.18.2), not a range or latest")
    if (path is None) != (commit is None):
        _fail(filt, "path and commit go together (a chart folder of a Git repository at a commit)")
    if path is not None:
        path = _text(filt, "path", path)
        if path.startswith("/") or ".." in path.split("/"):
            _fail(filt, f"path {path!r} must be a relative folder of the repository")
        if not isinstance(commit, str) or not _COMMIT.match(commit):
            _fail(filt, f"commit {commit!r} must be a full 40-hex Git commit id (branches and tags move)")
    _name(filt, "namespace", namespace)
    _name(filt, "argocd_namespace", argocd_namespace)
    _name(filt, "project", project, DNS1123_SUBDOMAIN, 253)
    values = {} if values is None else values
    if not isinstance(values, Mapping):
        _fail(filt, f"values must be a mapping of Helm values, got {values!r}")
    values = _plain(filt, "values", values)
    options = _list(filt, "sync_options", sync_options)
    for index, option in enumerate(options):
        if not isinstance(option, str) or not _SYNC_OPTION.match(option):
            _fail(filt, f"sync_options[{index}] {option!r} is not a Key=value sync option")
    if release_name is not None:
        _name(filt, "release_name", release_name, DNS1123_LABEL, 53)
    differences = _list(filt, "ignore_differences", ignore_differences)
    for index, item in enumerate(differences):
        if not isinstance(item, Mapping) or not item.get("kind"):
            _fail(filt, f"ignore_differences[{index}] must be a mapping with at least 'kind', got {item!r}")
    differences = _plain(filt, "ignore_differences", differences)
    all_labels = dict(MANAGED_BY)
    all_labels.update(_labels(filt, "labels", {} if labels is None else labels))

    helm = {"releaseName": release_name or name}
    if values:
        helm["valuesObject"] = values
    source = {"repoURL": repo_url, "chart": chart, "targetRevision": version, "helm": helm}
    if path is not None:
        source = {"repoURL": repo_url, "path": path, "targetRevision": commit, "helm": helm}
    spec = {
        "project": project,
        "source": source,
        "destination": {"server": IN_CLUSTER, "namespace": namespace},
        "syncPolicy": {
            "automated": {"prune": True, "selfHeal": True},
            "syncOptions": options,
            "retry": {"limit": RETRY["limit"], "backoff": dict(RETRY["backoff"])},
        },
    }
    if differences:
        spec["ignoreDifferences"] = differences
    return {
        "apiVersion": APP_API_VERSION,
        "kind": "Application",
        "metadata": {"name": name, "namespace": argocd_namespace, "labels": all_labels},
        "spec": spec,
    }


def tls_ingress(name, namespace=None, host=None, service=None, port=None, issuer=None, annotations=None,
                path="/", path_type="Prefix", labels=None, secret=None):
    """Return a Traefik Ingress for `host` with a cert-manager certificate in Secret
    `secret` (default `<name>-tls`)."""
    filt = "tls_ingress"
    for field, value in (("namespace", namespace), ("host", host), ("service", service), ("port", port),
                         ("issuer", issuer)):
        if value is None:
            _fail(filt, f"{field} is required")
    _name(filt, "name", name, DNS1123_SUBDOMAIN, 253 - len("-tls"))
    _name(filt, "namespace", namespace)
    if not isinstance(host, str) or len(host) > 253 or not INGRESS_HOST.match(host) or "." not in host:
        _fail(filt, f"host {host!r} must be a fully qualified lowercase DNS name (e.g. argocd.lab.example.org)")
    _name(filt, "service", service)
    if isinstance(port, bool):
        _fail(filt, f"port must be a port number or a port name, got {port!r}")
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if isinstance(port, int):
        if not 1 <= port <= 65535:
            _fail(filt, f"port {port} is outside 1-65535")
        backend_port = {"number": port}
    elif isinstance(port, str) and len(port) <= 15 and _PORT_NAME.match(port):
        backend_port = {"name": port}
    else:
        _fail(filt, f"port must be a port number or a port name (IANA_SVC_NAME), got {port!r}")
    _name(filt, "issuer", issuer, DNS1123_SUBDOMAIN, 253)
    secret = f"{name}-tls" if secret is None else _name(filt, "secret", secret, DNS1123_SUBDOMAIN, 253)
    if not isinstance(path, str) or not path.startswith("/") or any(c.isspace() for c in path):
        _fail(filt, f"path must be an absolute URL path starting with '/', got {path!r}")
    if path_type not in PATH_TYPES:
        _fail(filt, f"path_type must be one of {', '.join(PATH_TYPES)}, got {path_type!r}")
    annotations = {} if annotations is None else annotations
    if not isinstance(annotations, Mapping):
        _fail(filt, f"annotations must be a mapping of string to string, got {annotations!r}")
    for key, value in annotations.items():
        if not isinstance(key, str) or not _LABEL_KEY.match(key):
            _fail(filt, f"annotations key {key!r} is not a valid annotation key")
        if not isinstance(value, str):
            _fail(filt, f"annotations.{key} must be a string (quote it), got {value!r}")
    all_labels = dict(MANAGED_BY)
    all_labels.update(_labels(filt, "labels", {} if labels is None else labels))

    all_annotations = {
        ISSUER_ANNOTATION: issuer,
        ENTRYPOINTS_ANNOTATION: "websecure",
        ROUTER_TLS_ANNOTATION: "true",
    }
    all_annotations.update(annotations)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": all_labels,
            "annotations": all_annotations,
        },
        "spec": {
            "ingressClassName": INGRESS_CLASS,
            "tls": [{"hosts": [host], "secretName": secret}],
            "rules": [{
                "host": host,
                "http": {
                    "paths": [{
                        "path": path,
                        "pathType": path_type,
                        "backend": {"service": {"name": service, "port": backend_port}},
                    }],
                },
            }],
        },
    }


def backend_tls(objects, service=None, namespace=None, issuer=None, secret=None, labels=None, traefik=True):
    """Return `objects` plus a cert-manager Certificate for Service `service` (its in-cluster
    names, Secret `secret`) and, with `traefik`, a Traefik ServersTransport trusting the
    issuing CA, referenced from the Service's annotations with the https scheme."""
    filt = "backend_tls"
    objects = _list(filt, "_input", objects)
    for field, value in (("service", service), ("namespace", namespace), ("issuer", issuer), ("secret", secret)):
        if value is None:
            _fail(filt, f"{field} is required")
    _name(filt, "service", service)
    _name(filt, "namespace", namespace)
    _name(filt, "issuer", issuer, DNS1123_SUBDOMAIN, 253)
    _name(filt, "secret", secret, DNS1123_SUBDOMAIN, 253)
    if not isinstance(traefik, bool):
        _fail(filt, f"traefik must be a boolean, got {traefik!r}")
    all_labels = dict(MANAGED_BY)
    all_labels.update(_labels(filt, "labels", {} if labels is None else labels))
    server_name = f"{service}.{namespace}.svc"
    certificate = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": f"{service}-backend", "namespace": namespace, "labels": all_labels},
        "spec": {
            "secretName": secret,
            "commonName": server_name,
            "dnsNames": [service, f"{service}.{namespace}", server_name, f"{server_name}.{CLUSTER_DOMAIN}"],
            # A server may read its certificate at start only (argo-server does): a year,
            # renewed a month early, served after the next restart at the latest.
            "duration": "8760h",
            "renewBefore": "720h",
            "usages": ["server auth", "digital signature"],
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": issuer},
        },
    }
    found, out = False, []
    for index, obj in enumerate(objects):
        if not isinstance(obj, Mapping):
            _fail(filt, f"_input[{index}] must be a Kubernetes object (mapping), got {obj!r}")
        if obj.get("kind") == "Service" and (obj.get("metadata") or {}).get("name") == service:
            if (obj["metadata"].get("namespace") or namespace) != namespace:
                _fail(filt, f"Service {service} is in namespace {obj['metadata'].get('namespace')!r}, not {namespace!r}")
            found = True
            if traefik:
                obj = _plain(filt, f"_input[{index}]", obj)
                obj["metadata"]["annotations"] = dict(obj["metadata"].get("annotations") or {}, **{
                    SERVERS_SCHEME_ANNOTATION: "https",
                    SERVERS_TRANSPORT_ANNOTATION: f"{namespace}-{service}@kubernetescrd",
                })
        out.append(obj)
    if not found:
        _fail(filt, f"no Service named {service!r} among the objects")
    out.append(certificate)
    if traefik:
        # rootCAsSecrets: the CA in the Secret's ca.crt (cert-manager's CA issuer writes the
        # issuing CA there); Traefik reads tls.ca, else ca.crt (crd/kubernetes.go getCABlocks).
        # The one field for it in every Traefik v3.3-v3.7 CRD (rootCAs came with v3.4).
        out.append({
            "apiVersion": TRAEFIK_API_VERSION,
            "kind": "ServersTransport",
            "metadata": {"name": service, "namespace": namespace, "labels": all_labels},
            "spec": {"serverName": server_name, "rootCAsSecrets": [secret]},
        })
    return out


def rebind_subjects(objects, from_namespace=None, to_namespace=None):
    """Return `objects` with ServiceAccount subjects of (Cluster)RoleBindings moved from
    `from_namespace` to `to_namespace` (upstream manifests hard-code their namespace there)."""
    filt = "rebind_subjects"
    objects = _list(filt, "_input", objects)
    if from_namespace is None or to_namespace is None:
        _fail(filt, "from_namespace and to_namespace are required")
    _name(filt, "from_namespace", from_namespace)
    _name(filt, "to_namespace", to_namespace)
    out = []
    for index, obj in enumerate(objects):
        if not isinstance(obj, Mapping):
            _fail(filt, f"_input[{index}] must be a Kubernetes object (mapping), got {obj!r}")
        if obj.get("kind") not in ("RoleBinding", "ClusterRoleBinding") or not obj.get("subjects"):
            out.append(obj)
            continue
        subjects = _list(filt, f"_input[{index}].subjects", obj["subjects"])
        moved = []
        for subject in subjects:
            subject = dict(subject)
            if subject.get("kind") == "ServiceAccount" and subject.get("namespace") == from_namespace:
                subject["namespace"] = to_namespace
            moved.append(subject)
        obj = dict(obj)
        obj["subjects"] = moved
        out.append(obj)
    return out


class FilterModule:
    def filters(self):
        return {
            "argocd_helm_app": argocd_helm_app,
            "tls_ingress": tls_ingress,
            "backend_tls": backend_tls,
            "rebind_subjects": rebind_subjects,
        }
