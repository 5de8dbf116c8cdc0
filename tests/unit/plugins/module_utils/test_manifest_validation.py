"""Unit tests of the strict validator: schema selection, strictness rules of CRD
openAPIV3Schemas, error format, and the k8s_validate module on a tree."""
from __future__ import annotations

import hashlib
import json
from unittest import mock

import pytest
import yaml

from ansible_collections.researchops.mlops.plugins.module_utils import manifest_validation as mv
from ansible_collections.researchops.mlops.plugins.modules import k8s_validate

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.io"},
    "spec": {
        "group": "example.io",
        "scope": "Namespaced",
        "names": {"kind": "Widget", "plural": "widgets"},
        "versions": [
            {"name": "v1beta1", "served": False, "storage": False, "schema": {"openAPIV3Schema": {"type": "object"}}},
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer"},
                                    "port": {"x-kubernetes-int-or-string": True},
                                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                    "empty": {"type": "object"},
                                    "note": {"type": "string", "nullable": True},
                                    "template": {
                                        "type": "object",
                                        "x-kubernetes-embedded-resource": True,
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                    "typed": {
                                        "type": "object",
                                        "x-kubernetes-embedded-resource": True,
                                        "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}},
                                    },
                                },
                            },
                        },
                    }
                },
            },
        ],
    },
}


def widget(**spec):
    return {"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "demo"}, "spec": dict({"size": 1}, **spec)}


@pytest.fixture(scope="module")
def validator(upstream):
    return mv.Validator(
        k8s_version="v1.34.1+k3s1",
        workflows_schema=str(upstream / "argo-workflows/v4.1.2/schema.json"),
        events_schema=str(upstream / "argo-events/v1.9.11/schema.json"),
        crd_files=[str(upstream / "argo-cd/v3.5.1/install.yaml")],
        allow_kinds=["example.org/Allowed"],
    )


def errors(validator, obj):
    return [(issue["path"], issue["message"]) for issue in validator.validate(obj, "f.yaml")]


@pytest.fixture(scope="module")
def with_crd(validator):
    validator.add_crd(CRD, "crd.yaml")
    return validator


@pytest.mark.parametrize("spec", [
    {},
    {"port": 8080}, {"port": "http"},
    {"free": {"anything": {"goes": [1]}}},
    {"labels": {"a": "b"}},
    {"note": None},
    {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"whatever": 1}}},
    {"typed": {"apiVersion": "v1", "kind": "Thing", "metadata": {"name": "x"}, "spec": {"a": "b"}}},
])
def test_crd_schema_accepts_what_the_api_server_keeps(with_crd, spec):
    assert errors(with_crd, widget(**spec)) == []


@pytest.mark.parametrize("spec, path, fragment", [
    ({"sise": 2}, "$.spec", "'sise' was unexpected"),
    ({"port": 1.5}, "$.spec.port", "is not valid under any of the given schemas"),
    ({"labels": {"a": 1}}, "$.spec.labels.a", "is not of type 'string'"),
    ({"empty": {"x": 1}}, "$.spec.empty", "'x' was unexpected"),
    ({"typed": {"spec": {"b": 1}}}, "$.spec.typed.spec", "'b' was unexpected"),
    ({"size": "1"}, "$.spec.size", "is not of type 'integer'"),
])
def test_crd_schema_rejects_unknown_and_wrong_fields(with_crd, spec, path, fragment):
    found = errors(with_crd, widget(**spec))
    assert len(found) == 1 and found[0][0] == path and fragment in found[0][1], found


def test_custom_resource_metadata_is_checked_against_object_meta(with_crd):
    obj = widget()
    obj["metadata"]["labelz"] = {}
    assert errors(with_crd, obj) == [("$.metadata", "Additional properties are not allowed ('labelz' was unexpected)")]


def test_unserved_and_unknown_crd_versions(with_crd):
    assert errors(with_crd, dict(widget(), apiVersion="example.io/v1beta1")) == [
        ("$.apiVersion", "example.io/v1beta1 of Widget is not served by its CRD (crd.yaml)")]
    found = errors(with_crd, dict(widget(), apiVersion="example.io/v2"))
    assert found == [("$.apiVersion", "apiVersion example.io/v2 is not a version of the Widget CRD (has example.io/v1, example.io/v1beta1)")]


def test_schema_sources(validator, upstream):
    validator.counts.clear()
    workflow = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "w", "namespace": "d"},
                "spec": {"entrypoint": "m", "templates": [{"name": "m", "container": {"image": "x", "ports": [{"containerPort": 80}]}}]}}
    app = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "a", "namespace": "argocd"},
           "spec": {"project": "default", "destination": {"namespace": "d", "server": "https://kubernetes.default.svc"}}}
    bus = {"apiVersion": "argoproj.io/v1alpha1", "kind": "EventBus", "metadata": {"name": "default", "namespace": "d"},
           "spec": {"jetstream": {"version": "2.10.10"}}}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"}, "data": {"a": "b"}}
    for obj in (workflow, app, bus, cm):
        assert errors(validator, obj) == []
    assert validator.counts == {"argo-workflows schema.json": 1, "CRD argoproj.io": 1, "argo-events schema.json": 1, "kubernetes 1.34": 1}


def test_argo_int_or_string_and_quantity_accept_numbers(validator):
    workflow = {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate", "metadata": {"name": "w", "namespace": "d"},
                "spec": {"templates": [{"name": "m", "container": {"image": "x", "resources": {"limits": {"cpu": 2}},
                                                                   "readinessProbe": {"httpGet": {"port": 8080}}}}]}}
    assert errors(validator, workflow) == []


@pytest.mark.parametrize("obj, path, fragment", [
    ({"apiVersion": "example.org/v1", "kind": "Unknown", "metadata": {"name": "u", "namespace": "d"}}, "$", "no schema for Unknown (example.org/v1)"),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, "$.metadata.namespace", "ConfigMap is namespaced"),
    ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "namespace": "x"}}, "$.metadata.namespace", "Namespace is cluster-scoped"),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "d"}}, "$.metadata.name", "required"),
    ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "d"}, "spec": {"replicas": "2", "selector": {}, "template": {}}},
     "$.spec.replicas", "is not of type 'integer'"),
    ({"kind": "ConfigMap"}, "$", "not a Kubernetes object"),
])
def test_other_errors(validator, obj, path, fragment):
    found = errors(validator, obj)
    assert any(p == path and fragment in m for p, m in found), found


def test_allow_listed_kind_passes(validator):
    assert errors(validator, {"apiVersion": "example.org/v1", "kind": "Allowed", "metadata": {"name": "a", "namespace": "d"}}) == []


def test_issue_string_names_file_object_path_and_message(validator):
    issue = validator.validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"}, "dat": {}}, "platform/x/cm.yaml")[0]
    assert str(issue) == "platform/x/cm.yaml: ConfigMap d/c (v1): $: Additional properties are not allowed ('dat' was unexpected)"


def test_versions_are_normalised_and_fall_back_to_the_newest_older_schema():
    assert mv.normalise_k8s_version("v1.34.1+k3s1") == "1.34"
    with pytest.raises(ValueError, match="not a Kubernetes version"):
        mv.normalise_k8s_version("latest")
    schemas = mv.KubernetesSchemas("1.99")
    assert schemas.note.startswith("no schemas for Kubernetes 1.99; used 1.")


def test_validate_all_learns_crds_of_the_set_and_finds_duplicates(upstream):
    validator = mv.Validator(k8s_version="1.34")
    items = [("crd.yaml", CRD), ("w.yaml", widget()), ("w2.yaml", widget())]
    found = [str(issue) for issue in validator.validate_all(items)]
    assert found == ["w2.yaml: Widget demo/w (example.io/v1): $: emitted twice (also in w.yaml)"]


def test_load_tree_reports_unparsable_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a/kustomization.yaml").write_text("resources: [x]\n")
    (tmp_path / "a/bad.yaml").write_text("kind: [\n")
    (tmp_path / "a/cm.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"}}))
    items = mv.load_tree(str(tmp_path))
    assert [source for source, _unused in items] == ["a/bad.yaml", "a/cm.yaml"]
    issues = mv.Validator(k8s_version="1.34").validate_all(items)
    assert len(issues) == 1 and "a/bad.yaml: not valid YAML" in issues[0]["message"]


def run_module(args):
    from ansible.module_utils import basic
    from ansible.module_utils.common.text.converters import to_bytes

    with mock.patch.object(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args}))), \
            mock.patch.object(basic, "_ANSIBLE_PROFILE", "legacy", create=True):
        with pytest.raises(SystemExit), mock.patch("builtins.print") as printed:
            k8s_validate.main()
    return json.loads(printed.call_args[0][0])


def test_module_fails_listing_errors_and_passes_clean_trees(tmp_path):
    good = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"}}
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(good))
    result = run_module({"path": str(tmp_path), "k8s_version": "1.34"})
    assert result.get("failed") is not True and result["objects"] == 1 and result["schemas"] == {"kubernetes 1.34": 1}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(dict(good, metadata={"name": "b", "namespace": "d"}, extra=1)))
    result = run_module({"path": str(tmp_path), "k8s_version": "1.34"})
    assert result["failed"] is True
    assert result["msg"].startswith("1 validation error(s) in 2 objects:\nbad.yaml: ConfigMap d/b (v1): $: Additional properties")
    result = run_module({"objects": [good], "k8s_version": "1.34"})
    assert result["objects"] == 1 and result["errors"] == []


def test_module_needs_a_path_or_objects():
    result = run_module({})
    assert result["failed"] is True and "one of the following is required: path, objects" in result["msg"]


def test_parse_cache_never_skips_validating_changed_content(tmp_path):
    """The validation parse cache (k8s_validate parse_cache) is keyed by the sha256 of
    each file's bytes: a file that was valid and cached, then edited (same name, same
    size class, an unknown field added), is parsed again and refused; the cache entries
    exist for both contents; with the cache, a clean tree's result equals the uncached one."""
    tree, cache = tmp_path / "tree", tmp_path / "cache"
    tree.mkdir()
    good = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"}, "data": {"k": "v"}}
    (tree / "cm.yaml").write_text(yaml.safe_dump(good))
    clean = run_module({"path": str(tree), "k8s_version": "1.34", "parse_cache": str(cache)})
    assert clean.get("failed") is not True and clean["objects"] == 1
    assert run_module({"path": str(tree), "k8s_version": "1.34", "parse_cache": str(cache)}) == clean
    assert len(list((cache / "parsed").glob("*.json"))) == 1
    (tree / "cm.yaml").write_text(yaml.safe_dump(dict(good, extra=1)))
    result = run_module({"path": str(tree), "k8s_version": "1.34", "parse_cache": str(cache)})
    assert result["failed"] is True and "cm.yaml: ConfigMap d/c (v1): $: Additional properties" in result["msg"]
    assert len(list((cache / "parsed").glob("*.json"))) == 2
    uncached = run_module({"path": str(tree), "k8s_version": "1.34"})
    assert result["errors"] == uncached["errors"]


def test_parse_cache_entry_is_only_used_for_its_own_bytes(tmp_path):
    """An entry under another file's sum is never read for this file (the key is the
    sha256 of the bytes being parsed), and a corrupt entry is parsed again and rewritten."""
    cache = tmp_path / "cache"
    text = yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d"}})
    (tmp_path / "cm.yaml").write_text(text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    (cache / "parsed").mkdir(parents=True)
    (cache / "parsed" / f"{digest}.json").write_text("{not json")
    items = mv.load_tree(str(tmp_path), str(cache))
    assert [obj["metadata"]["name"] for _source, obj in items] == ["c"]
    assert json.loads((cache / "parsed" / f"{digest}.json").read_text())["source_sha256"] == digest


def test_yaml_values_json_cannot_hold_are_not_cached(tmp_path):
    """A YAML timestamp stays a date (validation refuses it where a string is wanted), so
    such a file is parsed every time rather than served from JSON as a string."""
    cache = tmp_path / "cache"
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: d}\ndata: {day: 2026-11-30}\n")
    for _round in range(2):
        items = mv.load_tree(str(tmp_path), str(cache))
        issues = mv.Validator(k8s_version="1.34").validate_all(items)
        assert len(issues) == 1 and issues[0]["path"] == "$.data.day"
    assert not (cache / "parsed").exists() or not list((cache / "parsed").iterdir())
