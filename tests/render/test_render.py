"""The whole platform rendered from inventories/local: every object valid, the validator
able to fail, no duplicates, namespaces and Secrets accounted for, TLS everywhere,
deterministic, consumable by kustomize, and no secret value in the output."""
from __future__ import annotations

import copy
import filecmp
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from render_helpers import user_provided_secrets

from ansible_collections.researchops.mlops.plugins.module_utils.k8s_objects import CREATES_SECRETS_ANNOTATION, object_id, object_key

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures"
# Namespaces that exist in every cluster and that the render may use without creating.
SYSTEM_NAMESPACES = {"kube-system", "default"}
CERT_MANAGER_ANNOTATIONS = ("cert-manager.io/cluster-issuer", "cert-manager.io/issuer")
# Keys that hold credentials in the Secrets of the platform.
SENSITIVE_KEY = re.compile(r"(?i)password|passwd|token|secret|key|credential|dockerconfig|\.pem$|\.crt$")
# Helm charts' convention for "use this Secret instead of generating one".
HELM_EXISTING_SECRET = re.compile(r"^existing\w*Secret$")


def fixture_objects():
    with open(FIXTURES / "seed_objects.yaml", encoding="utf-8") as handle:
        return {obj["kind"]: obj for obj in yaml.safe_load_all(handle) if obj}


# ---------------------------------------------------------------- validity
def test_every_rendered_object_validates(rendered, validator_factory):
    validator = validator_factory()
    issues = validator.validate_all(rendered)
    assert [str(issue) for issue in issues] == []
    # each schema family was really used where the platform has such objects
    kinds = {obj["kind"] for _, obj in rendered}
    used = set(validator.counts)
    assert any(name.startswith("kubernetes ") for name in used)
    if kinds & {"WorkflowTemplate", "Workflow", "CronWorkflow", "ClusterWorkflowTemplate"}:
        assert "argo-workflows schema.json" in used
    if kinds & {"EventSource", "Sensor", "EventBus"}:
        assert "argo-events schema.json" in used
    if "Application" in kinds:
        assert "CRD argoproj.io" in used
    if "ClusterIssuer" in kinds:
        assert "CRD cert-manager.io" in used


def _set(path):
    def mutate(obj):
        target = obj
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = "typo"

    return mutate


def _container(obj):
    spec = obj["spec"]["template"]["spec"] if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet") else obj["spec"]
    return spec["containers"][0]


SEEDS = {
    "Deployment": (lambda obj: _container(obj).__setitem__("imagePullPolicyy", "Always"), "$.spec.template.spec.containers[0]", "imagePullPolicyy"),
    "WorkflowTemplate": (_set(["spec", "entrypointt"]), "$.spec", "entrypointt"),
    "Application": (_set(["spec", "source", "targetRevison"]), "$.spec.source", "targetRevison"),
    "ClusterIssuer": (_set(["spec", "selfSigned2"]), "$.spec", "selfSigned2"),
    "Sensor": (lambda obj: obj["spec"]["dependencies"][0].__setitem__("eventNam", "x"), "$.spec.dependencies[0]", "eventNam"),
}


@pytest.mark.parametrize("kind", sorted(SEEDS))
@pytest.mark.parametrize("origin", ["fixture", "render"])
def test_validator_catches_a_seeded_typo(kind, origin, rendered, validator):
    if origin == "fixture":
        obj = fixture_objects()[kind]
    else:
        candidates = [o for _, o in rendered if o["kind"] == kind]
        if kind == "Deployment" and not candidates:
            candidates = [o for _, o in rendered if o["kind"] in ("StatefulSet", "DaemonSet")]
        if not candidates:
            pytest.skip(f"the render has no {kind}")
        obj = candidates[0]
    assert [str(issue) for issue in validator.validate(obj, origin)] == []
    bad = copy.deepcopy(obj)
    mutate, path, field = SEEDS[kind]
    mutate(bad)
    issues = validator.validate(bad, origin)
    assert len(issues) == 1, [str(issue) for issue in issues]
    assert issues[0]["path"] == path
    assert field in issues[0]["message"]
    assert issues[0]["object"] == object_id(bad)


def test_a_kind_without_schema_is_an_error(validator):
    obj = {"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware", "metadata": {"name": "m", "namespace": "demo"}, "spec": {}}
    issues = validator.validate(obj, "seed")
    assert len(issues) == 1 and "no schema for Middleware" in issues[0]["message"]


# ---------------------------------------------------------------- consistency
def test_no_object_is_emitted_twice(rendered):
    seen = {}
    twice = []
    for source, obj in rendered:
        key = object_key(obj)
        if key in seen:
            twice.append(f"{object_id(obj)} in {seen[key]} and {source}")
        seen[key] = source
    assert twice == []


def test_every_namespace_used_is_created_or_a_system_namespace(rendered):
    created = {obj["metadata"]["name"] for _, obj in rendered if obj["kind"] == "Namespace"}
    missing = []
    for source, obj in rendered:
        used = {obj["metadata"].get("namespace")}
        if obj["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            used |= {subject.get("namespace") for subject in obj.get("subjects") or [] if subject.get("kind") == "ServiceAccount"}
        for namespace in used - {None} - created - SYSTEM_NAMESPACES:
            missing.append(f"{source}: {object_id(obj)} uses namespace {namespace}")
    assert missing == []


def _secret_refs(node, found, path=""):
    """(path, name) of every Secret a Kubernetes or Argo object refers to."""
    if isinstance(node, dict):
        if node.get("optional") is True:
            return
        for key, value in node.items():
            where = f"{path}.{key}"
            if key in ("secretKeyRef", "secretRef") and isinstance(value, dict) and value.get("name"):
                if value.get("optional") is not True:
                    found.append((where, value["name"]))
            elif key == "secret" and isinstance(value, dict) and (value.get("secretName") or value.get("name")):
                if value.get("optional") is not True:
                    found.append((where, value.get("secretName") or value.get("name")))
                continue
            elif key == "secretName" and isinstance(value, str):
                found.append((where, value))
            elif HELM_EXISTING_SECRET.match(key) and isinstance(value, str) and value:
                found.append((where, value))
            elif key == "imagePullSecrets" and isinstance(value, list):
                found.extend((where, item["name"]) for item in value if isinstance(item, dict) and item.get("name"))
            elif (
                key.endswith(("SecretRef", "Secret"))
                and key != "privateKeySecretRef"  # ACME account key: cert-manager creates it
                and isinstance(value, dict)
                and isinstance(value.get("name"), str)
            ):
                found.append((where, value["name"]))
            _secret_refs(value, found, where)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _secret_refs(item, found, f"{path}[{index}]")


def test_every_secret_referenced_is_created_or_user_provided(rendered, repo_root, platform_defaults):
    cert_manager_ns = platform_defaults["mlops_namespaces"]["cert_manager"]
    created = set()
    refs = []
    for source, obj in rendered:
        namespace = obj["metadata"].get("namespace")
        annotations = obj["metadata"].get("annotations") or {}
        if obj["kind"] == "Secret":
            created.add((namespace, obj["metadata"]["name"]))
        if obj["kind"] == "Certificate":
            created.add((namespace, obj["spec"]["secretName"]))
        if obj["kind"] == "Ingress" and any(key in annotations for key in CERT_MANAGER_ANNOTATIONS):
            created |= {(namespace, tls["secretName"]) for tls in obj["spec"].get("tls") or [] if tls.get("secretName")}
        for item in str(annotations.get(CREATES_SECRETS_ANNOTATION, "")).split(","):
            if item.strip():
                ns, _, name = item.strip().partition("/")
                created.add((ns, name))
        if obj["kind"] in ("Certificate", "Secret"):
            continue
        found = []
        spec = copy.deepcopy(obj.get("spec") or {})
        if obj["kind"] == "Application":
            # Helm values refer to Secrets of the destination namespace
            destination_ns = (spec.get("destination") or {}).get("namespace")
            for index, source_spec in enumerate([spec.get("source")] + list(spec.get("sources") or [])):
                values = ((source_spec or {}).get("helm") or {}).pop("valuesObject", None)
                helm_found = []
                _secret_refs(values or {}, helm_found, f"$.spec.source[{index}].helm.valuesObject")
                refs += [(source, obj, path, destination_ns, name) for path, name in helm_found]
        _secret_refs(spec, found, "$.spec")
        if obj["kind"] == "ServiceAccount":
            found += [("$.secrets", s["name"]) for s in obj.get("secrets") or []]
            found += [("$.imagePullSecrets", s["name"]) for s in obj.get("imagePullSecrets") or []]
        # cluster-scoped issuers read their Secrets from cert-manager's cluster resource namespace
        ref_ns = namespace or (cert_manager_ns if obj["kind"] == "ClusterIssuer" else None)
        refs += [(source, obj, path, ref_ns, name) for path, name in found]
    provided = user_provided_secrets(repo_root)

    def is_provided(namespace, name):
        return any(
            any(p.fullmatch(namespace or "") for p in namespaces) and any(p.fullmatch(name) for p in names) for namespaces, names in provided
        )

    missing = [
        f"{source}: {object_id(obj)} {path} refers to Secret {ns}/{name}, which nothing in the render creates"
        " and docs/secrets.md does not list as user-provided"
        for source, obj, path, ns, name in refs
        if (ns, name) not in created and not is_provided(ns, name)
    ]
    assert refs, "no Secret reference found at all: the scan is broken"
    assert missing == []


def test_every_ingress_has_tls_for_each_host(rendered):
    problems = []
    for source, obj in rendered:
        if obj["kind"] != "Ingress":
            continue
        tls = obj["spec"].get("tls") or []
        covered = {host for entry in tls for host in entry.get("hosts") or []}
        if not tls or not all(entry.get("secretName") for entry in tls):
            problems.append(f"{source}: no TLS section with a secretName")
        for rule in obj["spec"].get("rules") or []:
            if rule.get("host") not in covered:
                problems.append(f"{source}: host {rule.get('host')} is not covered by TLS")
    assert problems == []


def test_no_generated_or_vault_secret_value_is_written(rendered, repo_root):
    declared = set()
    for _, obj in rendered:
        value = ((obj["metadata"].get("annotations") or {}).get(CREATES_SECRETS_ANNOTATION)) or ""
        declared |= {tuple(item.strip().split("/", 1)) for item in value.split(",") if item.strip()}
    provided = user_provided_secrets(repo_root)
    leaked = []
    for source, obj in rendered:
        if obj["kind"] != "Secret":
            continue
        key = (obj["metadata"].get("namespace"), obj["metadata"]["name"])
        has_data = bool(obj.get("data") or obj.get("stringData"))
        if key in declared:
            leaked.append(f"{source}: Secret {key[0]}/{key[1]} is generated in the cluster but written to the render")
        user = any(any(p.fullmatch(key[0] or "") for p in ns) and any(p.fullmatch(key[1]) for p in names) for ns, names in provided)
        # a name pattern of a vault row (repo-<name>) may also fit a Secret holding no
        # secret at all (a public repository's url): only credential-like keys count
        sensitive = sorted(k for k in {**(obj.get("data") or {}), **(obj.get("stringData") or {})} if SENSITIVE_KEY.search(k))
        if user and has_data and sensitive:
            leaked.append(f"{source}: Secret {key[0]}/{key[1]} holds vault-provided values ({', '.join(sensitive)})")
    assert leaked == []


# ---------------------------------------------------------------- the tree itself
def _tree_bytes(root):
    files = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            files[str(path.relative_to(root))] = path.read_bytes()
    return files


def test_rendering_twice_gives_byte_identical_trees(renders):
    first, second = renders
    a, b = _tree_bytes(first), _tree_bytes(second)
    assert sorted(a) == sorted(b)
    assert [name for name in sorted(a) if a[name] != b[name]] == []
    assert filecmp.dircmp(first, second).diff_files == []


def test_one_object_per_file_and_sorted_keys(render_tree):
    for path in sorted(render_tree.rglob("*.yaml")):
        docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        assert len(docs) == 1, path
        assert list(docs[0]) == sorted(docs[0]), path


@pytest.fixture(scope="session")
def kubectl():
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed (scripts/host-deps.sh installs it)")
    return path


def _kustomize(kubectl, folder):
    result = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"kubectl kustomize {folder}: {result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_kubectl_kustomize_builds_the_whole_tree(kubectl, render_tree, rendered):
    built = _kustomize(kubectl, render_tree)
    assert sorted(map(object_key, built)) == sorted(object_key(obj) for _, obj in rendered)


def test_every_component_folder_builds_standalone(kubectl, render_tree):
    folders = sorted(path.parent for path in render_tree.glob("*/*/kustomization.yaml"))
    assert folders
    for folder in folders:
        files = [p for p in folder.glob("*.yaml") if p.name != "kustomization.yaml"]
        assert len(_kustomize(kubectl, folder)) == len(files), folder


def test_root_kustomization_lists_phases_in_order(render_tree):
    root = yaml.safe_load((render_tree / "kustomization.yaml").read_text())
    order = ["cluster", "platform", "pipelines"]
    phases = [phase for phase in root["resources"] if phase in order]
    assert phases == [phase for phase in order if (render_tree / phase).is_dir()]
