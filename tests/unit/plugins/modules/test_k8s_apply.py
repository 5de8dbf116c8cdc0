"""Unit tests of the apply sink (module_utils.k8s_apply + modules.k8s_apply) against an
in-memory API server fake and a mocked kubernetes dynamic client."""

from __future__ import annotations

import copy
import json
import threading
from unittest import mock

import pytest

from ansible_collections.researchops.mlops.plugins.module_utils import k8s_apply as apply_utils
from ansible_collections.researchops.mlops.plugins.module_utils.k8s_apply import ApiAdapter, Applier, ApplyError, UnknownResource
from ansible_collections.researchops.mlops.plugins.module_utils.k8s_objects import HASH_ANNOTATION, content_hash


class FakeResource:
    def __init__(self, api_version, kind, namespaced):
        self.group_version = api_version
        self.kind = kind
        self.namespaced = namespaced

    def path(self, name=None, namespace=None):
        base = f"/apis/{self.group_version}" + (f"/namespaces/{namespace}" if namespace else "") + f"/{self.kind.lower()}s"
        return base + (f"/{name}" if name else "")


class FakeApiError(Exception):
    def __init__(self, status, reason, message):
        super().__init__(f"({status})\nReason: {reason}")
        self.status = status
        self.body = json.dumps({"kind": "Status", "reason": reason, "message": message})


BUILTIN = {
    ("v1", "Namespace"): False,
    ("v1", "ConfigMap"): True,
    ("v1", "Secret"): True,
    ("apps/v1", "Deployment"): True,
    ("apps/v1", "StatefulSet"): True,
    ("apps/v1", "DaemonSet"): True,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): False,
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): False,
}


class FakeCluster:
    """Just enough API server: discovery, metadata LIST, GET, server-side apply, waits."""

    def __init__(self):
        self.served = {key: FakeResource(*key, namespaced) for key, namespaced in BUILTIN.items()}
        self.store = {}
        self.version = 100
        self.calls = []
        self.lock = threading.Lock()
        self.fail = {}
        self.not_ready = set()

    def log(self, *call):
        with self.lock:
            self.calls.append(call)

    def calls_of(self, name):
        return [call for call in self.calls if call[0] == name]

    # adapter interface
    def resource(self, api_version, kind):
        try:
            return self.served[(api_version, kind)]
        except KeyError:
            raise UnknownResource(f"no {kind} in {api_version}") from None

    def invalidate(self):
        self.log("invalidate")

    def list_objects(self, resource, namespace):
        self.log("list", resource.kind, namespace)
        return {name: copy.deepcopy(obj) for (kind, ns, name), obj in self.store.items() if kind == resource.kind and ns == namespace}

    def apply(self, resource, body, namespace, field_manager, force_conflicts, dry_run):
        name = body["metadata"]["name"]
        self.log("apply", resource.kind, namespace, name, field_manager, force_conflicts, dry_run, copy.deepcopy(body))
        if (resource.kind, name) in self.fail:
            raise self.fail[(resource.kind, name)]
        key = (resource.kind, namespace, name)
        with self.lock:
            old = self.store.get(key)
            new = self.stored_form(copy.deepcopy(body))
            if old is not None:
                same = dict(old.items()) == dict(new, metadata=dict(new["metadata"], resourceVersion=old["metadata"]["resourceVersion"]))
                new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"] if same else str(self._next())
            else:
                new["metadata"]["resourceVersion"] = str(self._next())
            if not dry_run:
                self.store[key] = new
                if resource.kind == "CustomResourceDefinition":
                    spec = body["spec"]
                    api_version = f"{spec['group']}/{spec['versions'][0]['name']}"
                    self.served[(api_version, spec["names"]["kind"])] = FakeResource(api_version, spec["names"]["kind"], spec["scope"] == "Namespaced")
        return copy.deepcopy(new)

    def wait(self, api_version, kind, name, namespace, condition, timeout):
        self.log("wait", kind, namespace, name, json.dumps(condition, sort_keys=True) if condition else None)
        if (kind, name) in self.not_ready:
            return False, "not ready, status {}"
        return True, "ready"

    @staticmethod
    def stored_form(body):
        """What the API server stores: here, a number given for a string field is a string."""
        limits = ((body.get("spec") or {}).get("limits")) or {}
        for key, value in limits.items():
            limits[key] = "1Gi" if value == "1024Mi" else str(value)
        return body

    def _next(self):
        self.version += 1
        return self.version


def crd(kind="Widget", group="example.io", scope="Namespaced"):
    plural = kind.lower() + "s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": kind, "plural": plural},
            "scope": scope,
            "versions": [{"name": "v1", "served": True, "storage": True}],
        },
    }


def objects():
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "demo"}, "spec": {"replicas": 1}},
        {"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w1", "namespace": "demo"}, "spec": {"size": 3}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "demo"}, "data": {"a": "1"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}},
        crd(),
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "reader"}, "rules": []},
    ]


def run(cluster, objs=None, **kwargs):
    return Applier(cluster, **kwargs).run(objects() if objs is None else objs)


def test_crds_and_namespaces_first_then_established_then_the_rest():
    cluster = FakeCluster()
    result = run(cluster)
    assert result["changed"] is True
    sequence = [(call[0], call[1] if len(call) > 1 else None) for call in cluster.calls if call[0] in ("apply", "wait", "invalidate")]
    first_wave = {("apply", "CustomResourceDefinition"), ("apply", "Namespace")}
    assert set(sequence[:2]) == first_wave
    assert sequence[2] == ("wait", "CustomResourceDefinition")
    assert cluster.calls_of("wait")[0][4] == json.dumps({"status": "True", "type": "Established"}, sort_keys=True)
    assert sequence[3] == ("invalidate", None)
    assert {kind for action, kind in sequence[4:]} == {"Deployment", "Widget", "ConfigMap", "ClusterRole"}
    assert sorted(r["action"] for r in result["objects"]) == ["created"] * 6
    assert result["unchanged"] == []


def test_every_request_is_server_side_apply_with_field_manager_and_hash():
    cluster = FakeCluster()
    run(cluster, field_manager="researchops", force_conflicts=True)
    sent = cluster.calls_of("apply")
    assert len(sent) == 6
    by_name = {call[3]: call for call in sent}
    for call in sent:
        assert call[4:7] == ("researchops", True, False)
        body = call[7]
        assert body["metadata"]["annotations"][HASH_ANNOTATION] == content_hash(body)
    original = next(obj for obj in objects() if obj["kind"] == "Deployment")
    assert by_name["web"][7]["metadata"]["annotations"][HASH_ANNOTATION] == content_hash(original)
    # cluster-scoped objects are sent without a namespace
    assert by_name["reader"][2] is None


def test_no_change_rerun_sends_nothing_and_lists_once_per_type_and_namespace():
    cluster = FakeCluster()
    run(cluster)
    cluster.calls.clear()
    result = run(cluster)
    assert result["changed"] is False
    assert cluster.calls_of("apply") == []
    lists = cluster.calls_of("list")
    assert sorted((kind, ns) for _verb, kind, ns in lists) == sorted(
        [("CustomResourceDefinition", None), ("Namespace", None), ("Deployment", "demo"), ("Widget", "demo"), ("ConfigMap", "demo"), ("ClusterRole", None)]
    )
    assert len(result["unchanged"]) == 6
    assert "ConfigMap demo/settings" in result["unchanged"]


def test_changed_object_is_applied_alone_and_reported_updated():
    cluster = FakeCluster()
    run(cluster)
    cluster.calls.clear()
    objs = objects()
    objs[2]["data"]["a"] = "2"
    result = run(cluster, objs)
    assert result["changed"] is True
    assert [call[3] for call in cluster.calls_of("apply")] == ["settings"]
    assert [r for r in result["objects"] if r["action"] != "unchanged"] == [
        {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "demo", "name": "settings", "action": "updated", "drifted": False, "fields": ["data.a"]}
    ]
    assert result["applied"] == ["ConfigMap demo/settings"] and result["drifted"] == []
    assert cluster.store[("ConfigMap", "demo", "settings")]["data"] == {"a": "2"}


def test_noop_apply_without_skipping_is_not_a_change():
    cluster = FakeCluster()
    run(cluster)
    result = run(cluster, skip_unchanged=False)
    assert len(cluster.calls_of("apply")) == 12
    assert result["changed"] is False
    assert {r["action"] for r in result["objects"]} == {"unchanged"}


def test_check_mode_dry_runs_and_stores_nothing():
    cluster = FakeCluster()
    result = run(cluster, check_mode=True)
    assert result["changed"] is True
    assert cluster.store == {}
    sent = cluster.calls_of("apply")
    assert all(call[6] is True for call in sent)
    # the Widget CRD is not created in check mode: the Widget is reported without a request
    assert "Widget" not in {call[1] for call in sent}
    assert {r["name"]: r["action"] for r in result["objects"]}["w1"] == "created"
    assert cluster.calls_of("wait") == []


def test_check_mode_on_an_up_to_date_cluster_reports_no_change():
    cluster = FakeCluster()
    run(cluster)
    result = run(cluster, check_mode=True)
    assert result["changed"] is False


def test_rollout_waits_only_when_asked_and_only_for_workloads():
    cluster = FakeCluster()
    objs = objects() + [
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "demo"}, "spec": {}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "demo"}, "spec": {}},
    ]
    run(cluster, objs)
    assert [call[1] for call in cluster.calls_of("wait")] == ["CustomResourceDefinition"]
    cluster.calls.clear()
    result = run(
        cluster,
        objs,
        wait=True,
        wait_for=[{"apiVersion": "apps/v1", "kind": "Deployment", "name": "cert-manager-webhook", "namespace": "cert-manager"}],
    )
    waited = sorted((call[1], call[2], call[3]) for call in cluster.calls_of("wait"))
    assert waited == [
        ("DaemonSet", "demo", "agent"),
        ("Deployment", "cert-manager", "cert-manager-webhook"),
        ("Deployment", "demo", "web"),
        ("StatefulSet", "demo", "db"),
    ]
    assert all(entry["ready"] for entry in result["waited"])


def test_wait_timeout_names_the_object():
    cluster = FakeCluster()
    cluster.not_ready.add(("Deployment", "web"))
    with pytest.raises(ApplyError, match=r"timed out after 5s waiting for: Deployment demo/web \(apps/v1\) rolled out: not ready"):
        run(cluster, wait=True, wait_timeout=5)


def test_wait_for_item_with_condition_and_api_version_alias():
    cluster = FakeCluster()
    run(
        cluster,
        [],
        wait=True,
        wait_for=[{"api_version": "argoproj.io/v1alpha1", "kind": "Application", "name": "harbor", "namespace": "argocd",
                   "condition": {"type": "Healthy", "status": "True"}}],
    )
    assert cluster.calls_of("wait") == [("wait", "Application", "argocd", "harbor", json.dumps({"status": "True", "type": "Healthy"}))]


def test_wait_for_item_without_kind_fails():
    with pytest.raises(ApplyError, match="needs apiVersion, kind and name"):
        run(FakeCluster(), [], wait=True, wait_for=[{"apiVersion": "v1", "name": "x"}])


def test_api_errors_name_each_object_and_every_object_of_the_wave_is_tried():
    cluster = FakeCluster()
    cluster.fail[("Deployment", "web")] = FakeApiError(422, "Invalid", 'Deployment.apps "web" is invalid: spec.selector: Required value')
    cluster.fail[("ConfigMap", "settings")] = FakeApiError(403, "Forbidden", "configmaps is forbidden")
    with pytest.raises(ApplyError) as error:
        run(cluster)
    message = str(error.value)
    assert "2 object(s) failed to apply" in message
    assert 'Deployment demo/web (apps/v1): 422 Invalid: Deployment.apps "web" is invalid: spec.selector: Required value' in message
    assert "ConfigMap demo/settings (v1): 403 Forbidden: configmaps is forbidden" in message
    assert ("Widget", "demo", "w1") in cluster.store


def test_duplicate_objects_are_refused():
    objs = objects() + [objects()[2]]
    with pytest.raises(ApplyError, match=r"ConfigMap demo/settings \(v1\) is given twice \(items 2 and 6\)"):
        run(FakeCluster(), objs)


def test_namespaced_object_without_namespace_is_refused():
    objs = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "lost"}}]
    with pytest.raises(ApplyError, match="ConfigMap lost \\(v1\\): ConfigMap is namespaced but metadata.namespace is not set"):
        run(FakeCluster(), objs)


def test_unknown_kind_is_refused_with_its_identity():
    objs = [{"apiVersion": "example.io/v9", "kind": "Gadget", "metadata": {"name": "g", "namespace": "demo"}}]
    with pytest.raises(ApplyError, match=r"Gadget demo/g \(example.io/v9\): no Gadget in example.io/v9"):
        run(FakeCluster(), objs)


def test_object_without_name_is_refused():
    with pytest.raises(ApplyError, match="object 0: missing metadata.name"):
        run(FakeCluster(), [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}])


def test_diff_hides_secret_values():
    cluster = FakeCluster()
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token", "namespace": "demo"}, "stringData": {"token": "s3cr3t"}}
    result = run(cluster, [secret], diff=True)
    assert len(result["diff"]) == 1
    assert "s3cr3t" not in json.dumps(result["diff"])
    assert "<hidden>" in result["diff"][0]["after"]


def test_api_adapter_uses_server_side_apply_and_full_lists_as_raw_json():
    client = mock.MagicMock()
    resource = FakeResource("v1", "ConfigMap", True)
    client.client.server_side_apply.return_value = mock.Mock(data=b'{"metadata": {"resourceVersion": "7"}}')
    pages = [
        {"items": [{"metadata": {"name": "a", "resourceVersion": "1"}, "data": {"k": "v"}}], "metadata": {"continue": "next"}},
        {"items": [{"metadata": {"name": "b", "resourceVersion": "2"}}], "metadata": {}},
    ]
    client.client.request.side_effect = [mock.Mock(data=json.dumps(page).encode()) for page in pages]
    adapter = ApiAdapter(client)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "demo"}}
    assert adapter.apply(resource, body, "demo", field_manager="researchops", force_conflicts=True, dry_run=True) == {"metadata": {"resourceVersion": "7"}}
    client.client.server_side_apply.assert_called_once_with(
        resource, body=body, namespace="demo", serialize=False, field_manager="researchops", force_conflicts=True, dry_run="All"
    )
    listed = adapter.list_objects(resource, "demo")
    assert listed == {"a": pages[0]["items"][0], "b": pages[1]["items"][0]}
    first, second = client.client.request.call_args_list
    assert first.kwargs["serialize"] is False and first.kwargs["limit"] == 500
    assert first.kwargs["_continue"] is None and second.kwargs["_continue"] == "next"


def test_api_adapter_rediscovers_once_then_reports_unknown():
    client = mock.MagicMock()
    client.resource.side_effect = Exception("ResourceNotFoundError")
    adapter = ApiAdapter(client)
    with pytest.raises(UnknownResource, match="does not serve Widget in example.io/v1"):
        adapter.resource("example.io/v1", "Widget")
    assert client.resource.call_count == 2
    client.client.resources.invalidate_cache.assert_called_once_with()


def test_api_message_falls_back_to_the_exception_text():
    assert apply_utils.api_message(ValueError("boom\nmore")) == "boom"


# ---------------------------------------------------------------- drift correction
def test_drift_in_a_field_the_sink_sends_is_restored_and_reported():
    cluster = FakeCluster()
    run(cluster)
    cluster.store[("ConfigMap", "demo", "settings")]["data"]["a"] = "edited"
    cluster.store[("Deployment", "demo", "web")]["spec"]["replicas"] = 5
    cluster.calls.clear()
    result = run(cluster)
    assert result["changed"] is True
    assert sorted(call[3] for call in cluster.calls_of("apply")) == ["settings", "web"]
    assert sorted(result["drifted"]) == ["ConfigMap demo/settings", "Deployment demo/web"]
    by_name = {r["name"]: r for r in result["objects"]}
    assert by_name["settings"]["fields"] == ["data.a"] and by_name["web"]["fields"] == ["spec.replicas"]
    assert cluster.store[("ConfigMap", "demo", "settings")]["data"] == {"a": "1"}
    assert cluster.store[("Deployment", "demo", "web")]["spec"]["replicas"] == 1


def test_removed_label_and_deleted_object_are_restored():
    cluster = FakeCluster()
    objs = objects()
    objs[2]["metadata"]["labels"] = {"app": "demo"}
    run(cluster, objs)
    del cluster.store[("ConfigMap", "demo", "settings")]["metadata"]["labels"]
    del cluster.store[("ClusterRole", None, "reader")]
    result = run(cluster, objs)
    actions = {r["name"]: r["action"] for r in result["objects"] if r["action"] != "unchanged"}
    assert actions == {"settings": "updated", "reader": "created"}
    assert result["drifted"] == ["ConfigMap demo/settings"]
    assert {r["name"]: r.get("fields") for r in result["objects"]}["settings"] == ["metadata.labels"]


def test_fields_only_the_live_object_has_are_not_drift():
    cluster = FakeCluster()
    run(cluster)
    live = cluster.store[("Deployment", "demo", "web")]
    live["spec"]["strategy"] = {"type": "RollingUpdate"}
    live["metadata"]["labels"] = {"added-by": "someone-else"}
    live["status"] = {"replicas": 0}
    cluster.calls.clear()
    result = run(cluster)
    assert result["changed"] is False and cluster.calls_of("apply") == []


def test_a_suspected_difference_the_server_does_not_store_is_unchanged():
    """cpu: 1 is stored as "1" (matched without a request); memory: 1024Mi stored as 1Gi
    is sent, and the unchanged resourceVersion says it was no change."""
    cluster = FakeCluster()
    widget = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "q", "namespace": "demo"}, "spec": {"limits": {"cpu": 1}}}
    run(cluster, [widget])
    assert cluster.store[("Deployment", "demo", "q")]["spec"]["limits"] == {"cpu": "1"}
    cluster.calls.clear()
    assert run(cluster, [widget])["changed"] is False
    assert cluster.calls_of("apply") == []
    widget["spec"]["limits"]["memory"] = "1024Mi"
    assert run(cluster, [widget])["changed"] is True
    cluster.calls.clear()
    result = run(cluster, [widget])
    assert len(cluster.calls_of("apply")) == 1
    assert result["changed"] is False and result["unchanged"] == ["Deployment demo/q"]


def test_secret_string_data_is_compared_with_the_stored_base64():
    cluster = FakeCluster()
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token", "namespace": "demo"}, "stringData": {"token": "s3cr3t"}}
    run(cluster, [secret])
    stored = cluster.store[("Secret", "demo", "token")]
    stored["data"] = {"token": "czNjcjN0"}
    del stored["stringData"]
    cluster.calls.clear()
    assert run(cluster, [secret])["changed"] is False
    assert cluster.calls_of("apply") == []
    stored["data"] = {"token": "ZWRpdGVk"}
    result = run(cluster, [secret])
    assert result["drifted"] == ["Secret demo/token"]
    assert "ZWRpdGVk" not in json.dumps(result) and "s3cr3t" not in json.dumps(result)


def test_check_mode_with_drift_names_the_fields_and_writes_nothing():
    cluster = FakeCluster()
    run(cluster)
    cluster.store[("ConfigMap", "demo", "settings")]["data"]["a"] = "edited"
    before = copy.deepcopy(cluster.store)
    cluster.calls.clear()
    result = run(cluster, check_mode=True, diff=True)
    assert result["changed"] is True
    assert cluster.store == before
    assert all(call[6] is True for call in cluster.calls_of("apply"))
    assert result["drifted"] == ["ConfigMap demo/settings"]
    assert {r["name"]: r.get("fields") for r in result["objects"]}["settings"] == ["data.a"]
    (entry,) = result["diff"]
    assert '"a": "edited"' in entry["before"] and '"a": "1"' in entry["after"]


def test_without_skipping_every_object_is_sent():
    cluster = FakeCluster()
    run(cluster)
    cluster.calls.clear()
    result = run(cluster, skip_unchanged=False)
    assert len(cluster.calls_of("apply")) == 6 and result["changed"] is False


def test_differences_paths():
    diff = apply_utils.differences
    assert diff({"a": {"b": [1, {"c": 2}]}, "e": {}}, {"a": {"b": [1, {"c": 3, "z": 1}]}}) == ["a.b[1].c"]
    assert diff({"a": [1, 2]}, {"a": [1]}) == ["a"]
    assert diff({"a": 1}, {"a": "1"}) == [] and diff({"a": True}, {"a": "True"}) == ["a"]
    assert diff({"a": "x"}, {}) == ["a"] and diff({"a": None}, {}) == []


def test_an_object_being_deleted_is_never_reported_unchanged():
    cluster = FakeCluster()
    run(cluster)
    cluster.store[("ClusterRole", None, "reader")]["metadata"]["deletionTimestamp"] = "2026-11-30T13:00:00Z"
    with pytest.raises(ApplyError, match=r"ClusterRole reader \(rbac.authorization.k8s.io/v1\): is being deleted"):
        run(cluster)


def test_src_files_json_and_yaml_are_applied_after_the_objects(tmp_path):
    """src: a JSON List and multi-document YAML are read where the sink runs and applied
    like objects given inline (same requests, same order after the inline objects)."""
    deployment, widget, settings, namespace, definition, reader = objects()
    (tmp_path / "list.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [definition, namespace]}))
    (tmp_path / "rest.yaml").write_text("---\n" + json.dumps(widget) + "\n---\n\n---\n" + json.dumps(settings) + "\n")
    assert apply_utils.read_manifests([tmp_path / "list.json", tmp_path / "rest.yaml"]) == [definition, namespace, widget, settings]
    by_src, inline = FakeCluster(), FakeCluster()
    result = apply_utils.run_apply(Applier(by_src), [deployment, reader], False, src=[tmp_path / "list.json", tmp_path / "rest.yaml"])
    expected = apply_utils.run_apply(Applier(inline), [deployment, reader, definition, namespace, widget, settings], False)
    assert result["applied"] == expected["applied"] and len(result["applied"]) == 6
    assert by_src.calls_of("apply") == inline.calls_of("apply")


def test_src_errors_name_the_file(tmp_path):
    (tmp_path / "broken.yaml").write_text("kind: [\n")
    (tmp_path / "scalar.json").write_text("[1]")
    for name, message in (("broken.yaml", "not valid YAML"), ("scalar.json", "document 0 is a int"), ("missing.yaml", "cannot read it")):
        result = apply_utils.run_apply(Applier(FakeCluster()), [], False, src=[str(tmp_path / name)])
        assert result["failed"] is True and name in result["msg"] and message in result["msg"], result["msg"]
