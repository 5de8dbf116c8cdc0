"""Unit tests of the k8s_namespace, k8s_select, k8s_drop, k8s_patch and k8s_crds filters."""
from __future__ import annotations

import copy

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.researchops.mlops.plugins.filter.k8s import FilterModule, k8s_crds, k8s_drop, k8s_namespace, k8s_patch, k8s_select

OBJECTS = [
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "kept", "namespace": "other"}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "reader"}},
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "sa"}, {"kind": "User", "name": "alice"}],
    },
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "clusterthings.example.io"},
        "spec": {"group": "example.io", "scope": "Cluster", "names": {"kind": "ClusterThing"}},
    },
    {"apiVersion": "example.io/v1", "kind": "ClusterThing", "metadata": {"name": "t"}},
]


def test_namespace_set_only_on_namespaced_objects_without_one():
    before = copy.deepcopy(OBJECTS)
    result = k8s_namespace(OBJECTS, "argo")
    assert OBJECTS == before, "the input must not be modified"
    namespaces = {o["metadata"]["name"] + "/" + o["kind"]: o["metadata"].get("namespace") for o in result}
    assert namespaces == {
        "cm/ConfigMap": "argo",
        "kept/Secret": "other",
        "reader/ClusterRole": None,
        "reader/ClusterRoleBinding": None,
        "clusterthings.example.io/CustomResourceDefinition": None,
        "t/ClusterThing": None,
    }
    assert result[3]["subjects"] == [{"kind": "ServiceAccount", "name": "sa", "namespace": "argo"}, {"kind": "User", "name": "alice"}]


def test_namespace_force_and_no_subject_rewrite():
    result = k8s_namespace(OBJECTS, "argo", force=True, rewrite_subjects=False)
    assert result[1]["metadata"]["namespace"] == "argo"
    assert "namespace" not in result[3]["subjects"][0]


@pytest.mark.parametrize("objects, namespace, message", [
    ("nope", "argo", "k8s_namespace: expected a list of Kubernetes objects, got str"),
    ([{"metadata": {}}], "argo", "k8s_namespace: item 0 is not a Kubernetes object"),
    (OBJECTS, "", "k8s_namespace: namespace must be a non-empty string"),
])
def test_namespace_errors(objects, namespace, message):
    with pytest.raises(AnsibleFilterError, match=message):
        k8s_namespace(objects, namespace)


def test_select_and_drop_by_kind_and_name():
    assert [o["kind"] for o in k8s_select(OBJECTS, kind=["ClusterRole", "ClusterRoleBinding"])] == ["ClusterRole", "ClusterRoleBinding"]
    assert [o["kind"] for o in k8s_select(OBJECTS, name="reader", kind="ClusterRole")] == ["ClusterRole"]
    assert len(k8s_drop(OBJECTS, name="reader")) == 4
    assert [o["kind"] for o in k8s_crds(OBJECTS)] == ["CustomResourceDefinition"]


@pytest.mark.parametrize("call, message", [
    (lambda: k8s_select(OBJECTS), "k8s_select: give kind and/or name"),
    (lambda: k8s_drop(OBJECTS, kind=3), "k8s_drop: kind must be a string or a list of strings, got 3"),
    (lambda: k8s_crds({"kind": "x"}), "k8s_crds: expected a list"),
])
def test_select_errors(call, message):
    with pytest.raises(AnsibleFilterError, match=message):
        call()


def test_patch_merges_mappings_and_replaces_the_rest_in_matching_objects_only():
    objects = [
        {"kind": "ConfigMap", "metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"k": "v", "keep": "me"}},
        {"kind": "ConfigMap", "metadata": {"name": "b"}, "data": None},
        {"kind": "Deployment", "metadata": {"name": "a"}, "spec": {"args": ["--one"]}},
    ]
    before = copy.deepcopy(objects)
    patched = k8s_patch(objects, {"data": {"k": "new"}, "metadata": {"annotations": {"n": "1"}}}, kind="ConfigMap", name="a")
    assert patched[0] == {"kind": "ConfigMap", "metadata": {"name": "a", "labels": {"x": "1"}, "annotations": {"n": "1"}},
                          "data": {"k": "new", "keep": "me"}}
    assert patched[1:] == objects[1:] and patched[1] is objects[1]
    assert objects == before
    assert k8s_patch(objects, {"data": {"k": "v"}}, name="b")[1]["data"] == {"k": "v"}
    assert k8s_patch(objects, {"spec": {"args": ["--two"]}}, kind="Deployment")[2]["spec"] == {"args": ["--two"]}


def test_patch_merges_lists_of_named_items_by_name():
    deployment = {"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "x:latest", "args": ["a"], "probe": {"port": 1, "scheme": "HTTPS"}},
        {"name": "sidecar", "image": "y:1"},
    ]}}}}
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "x:1.0", "args": ["b"], "probe": {"scheme": "HTTP"}},
        {"name": "extra", "image": "z:2"},
    ]}}}}
    containers = k8s_patch([deployment], patch, kind="Deployment")[0]["spec"]["template"]["spec"]["containers"]
    assert containers == [
        {"name": "main", "image": "x:1.0", "args": ["b"], "probe": {"port": 1, "scheme": "HTTP"}},
        {"name": "sidecar", "image": "y:1"},
        {"name": "extra", "image": "z:2"},
    ]


@pytest.mark.parametrize("call, message", [
    (lambda: k8s_patch(OBJECTS, {"data": {}}), "k8s_patch: give kind and/or name"),
    (lambda: k8s_patch(OBJECTS, {}, kind="ConfigMap"), "k8s_patch: patch must be a non-empty mapping"),
    (lambda: k8s_patch(OBJECTS, {"data": {}}, kind="ConfigMap", name="nope"), "k8s_patch: no object matches"),
    (lambda: k8s_patch("x", {"data": {}}, kind="ConfigMap"), "k8s_patch: expected a list"),
])
def test_patch_errors(call, message):
    with pytest.raises(AnsibleFilterError, match=message):
        call()


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"k8s_namespace", "k8s_select", "k8s_drop", "k8s_patch", "k8s_crds"}
