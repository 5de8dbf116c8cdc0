"""Unit tests of the sink helpers: identity, file names, ordering, hashes, YAML."""
from __future__ import annotations

import pytest
import yaml

from ansible_collections.researchops.mlops.plugins.module_utils import k8s_objects as k

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.io"},
    "spec": {"group": "example.io", "scope": "Cluster", "names": {"kind": "Widget"}},
}


def obj(kind="ConfigMap", name="a", namespace="demo", api_version="v1", **extra):
    metadata = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **extra}


def test_file_names_are_stable_lower_case_and_sanitised():
    assert k.file_name(obj()) == "configmap-demo-a.yaml"
    assert k.file_name(obj("ClusterRole", "system:Aggregate_To_Admin", None, "rbac.authorization.k8s.io/v1")) == "clusterrole-system-aggregate-to-admin.yaml"
    assert k.file_name(CRD) == "customresourcedefinition-widgets.example.io.yaml"


def test_file_names_add_the_group_only_on_clashes():
    a = obj("Ingress", "web", api_version="networking.k8s.io/v1")
    b = obj("Ingress", "web", api_version="example.io/v1")
    assert k.file_names([a, b]) == ["ingress-networking.k8s.io-demo-web.yaml", "ingress-example.io-demo-web.yaml"]
    assert k.file_names([a]) == ["ingress-demo-web.yaml"]


def test_duplicates_are_refused_whatever_the_version():
    with pytest.raises(k.ObjectError, match=r"HorizontalPodAutoscaler demo/a \(autoscaling/v1\) is emitted twice \(items 0 and 1 of the list\)"):
        k.file_names([obj("HorizontalPodAutoscaler", api_version="autoscaling/v2"), obj("HorizontalPodAutoscaler", api_version="autoscaling/v1")])


@pytest.mark.parametrize("bad, message", [
    ("text", "expected a mapping"),
    ({"kind": "ConfigMap", "metadata": {"name": "a"}}, "missing apiVersion"),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}, "missing metadata.name"),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "x-"}}, "generateName is not supported"),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": 3}}, "metadata.namespace must be a string"),
])
def test_check_object(bad, message):
    with pytest.raises(k.ObjectError, match=message):
        k.check_object(bad)


def test_sort_puts_crds_and_namespaces_first():
    ordered = k.sort_objects([obj("Deployment", api_version="apps/v1"), obj("Namespace", "demo", None), CRD, obj()])
    kinds = [o["kind"] for o in ordered]
    assert set(kinds[:2]) == {"CustomResourceDefinition", "Namespace"}
    assert kinds[2:] == ["ConfigMap", "Deployment"]


def test_scopes_follow_crds():
    scopes = k.ObjectScopes([CRD])
    assert not scopes.is_namespaced("Widget")
    assert scopes.is_namespaced("ConfigMap") and not scopes.is_namespaced("ClusterRole")


def test_content_hash_ignores_its_own_annotation_and_key_order():
    a = obj(data={"x": "1", "y": "2"})
    b = {"data": {"y": "2", "x": "1"}, "metadata": {"namespace": "demo", "name": "a"}, "kind": "ConfigMap", "apiVersion": "v1"}
    assert k.content_hash(a) == k.content_hash(b) == k.content_hash(k.with_hash(a))
    assert k.with_hash(a)["metadata"]["annotations"][k.HASH_ANNOTATION] == k.content_hash(a)
    assert k.content_hash(obj(data={"x": "2"})) != k.content_hash(a)
    assert "annotations" not in a["metadata"], "with_hash must copy"


def test_yaml_is_sorted_block_style_and_round_trips():
    data = obj(data={"script.sh": "#!/bin/sh\necho hi\n", "b": "on", "a": "123"})
    text = k.to_yaml(data)
    assert text.index("apiVersion") < text.index("data") < text.index("kind") < text.index("metadata")
    assert "script.sh: |" in text
    assert yaml.safe_load(text) == data
    assert k.to_yaml(data) == text


def test_load_documents_flattens_lists_and_drops_empty_documents():
    text = "---\n---\n{}\n---\nkind: List\napiVersion: v1\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n"
    assert [o["metadata"]["name"] for o in k.load_documents(text)] == ["a"]
    with pytest.raises(k.ObjectError, match="document 0 is a list"):
        k.load_documents("- a\n", "x.yaml")


def test_secret_refs_created_annotation():
    job = obj("Job", api_version="batch/v1")
    job["metadata"]["annotations"] = {k.CREATES_SECRETS_ANNOTATION: "a/one, b/two,"}
    assert k.secret_refs_created(job) == ["a/one", "b/two"]
