"""gpu_node_labels against a fake Kubernetes API (a K8SClient look-alike holding Nodes)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ConflictError, DynamicApiError, NotFoundError

from ansible_collections.researchops.mlops.plugins.module_utils import node_labels as nl
from ansible_collections.researchops.mlops.plugins.modules import gpu_node_labels

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "nvidia_smi"
OURS = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def recorded(name):
    return yaml.safe_load((FIXTURES / f"{name}.yml").read_text())


H100 = recorded("eight_h100")
T4 = recorded("one_gpu_t4")
NO_GPU = recorded("no_gpu")["expected"]


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch, as the API server applies it."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class Instance:
    def __init__(self, data):
        self._data = copy.deepcopy(data)

    def to_dict(self):
        return copy.deepcopy(self._data)


class FakeClient:
    """What gpu_node_labels uses of kubernetes.core's K8SClient: resource/get/patch."""

    RESOURCE = object()

    def __init__(self, *nodes, fail_on=None):
        self.nodes = {n["metadata"]["name"]: copy.deepcopy(n) for n in nodes}
        self.patches = []
        self.fail_on = fail_on or {}

    def resource(self, kind, api_version):
        assert (kind, api_version) == ("Node", "v1")
        return self.RESOURCE

    def get(self, resource, name):
        assert resource is self.RESOURCE
        if ("get", name) in self.fail_on:
            raise DynamicApiError(ApiException(status=self.fail_on[("get", name)], reason="Forbidden"))
        if name not in self.nodes:
            raise NotFoundError(ApiException(status=404, reason="Not Found"))
        return Instance(self.nodes[name])

    def patch(self, resource, body, name, content_type):
        assert resource is self.RESOURCE
        assert content_type == "application/merge-patch+json"
        if ("patch", name) in self.fail_on:
            raise DynamicApiError(ApiException(status=self.fail_on[("patch", name)], reason="Forbidden"))
        node = self.nodes[name]
        expected_version = body.get("metadata", {}).get("resourceVersion")
        if expected_version is not None and expected_version != node["metadata"]["resourceVersion"]:
            raise ConflictError(ApiException(status=409, reason="Conflict"))
        self.patches.append((name, copy.deepcopy(body)))
        node = merge_patch(node, body)
        node["metadata"]["resourceVersion"] = str(int(node["metadata"]["resourceVersion"]) + 1)
        self.nodes[name] = node
        return Instance(node)


def node(name, labels=None, taints=None):
    obj = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "resourceVersion": "100",
            "labels": dict({"kubernetes.io/hostname": name}, **(labels or {})),
        },
        "spec": {"podCIDR": "10.42.0.0/24"},
    }
    if taints is not None:
        obj["spec"]["taints"] = taints
    return obj


class ModuleExit(Exception):
    def __init__(self, result, failed=False):
        super().__init__(result.get("msg", ""))
        self.result = result
        self.failed = failed


@pytest.fixture
def api(monkeypatch):
    """Install a FakeClient (set .client on the returned holder) and capture the exit."""
    holder = type("Holder", (), {"client": FakeClient(), "warnings": []})()

    def exit_json(self, **kwargs):
        raise ModuleExit(kwargs)

    def fail_json(self, **kwargs):
        raise ModuleExit(kwargs, failed=True)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, msg: holder.warnings.append(msg))
    monkeypatch.setattr(gpu_node_labels, "get_api_client", lambda module: holder.client)
    return holder


def run(args, check_mode=False, diff=False):
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with patch_module_args(args), pytest.raises(ModuleExit) as caught:
        gpu_node_labels.main()
    return caught.value


def test_labels_added_to_a_new_gpu_node(api):
    api.client = FakeClient(node("gpu-01"), node("cpu-01"))
    out = run({"nodes": [{"name": "gpu-01", "gpu": H100["expected"]}, {"name": "cpu-01", "gpu": NO_GPU}]})
    assert not out.failed, out.result
    assert out.result["changed"] is True
    assert [(n["name"], n["changed"]) for n in out.result["nodes"]] == [("gpu-01", True), ("cpu-01", False)]
    assert api.client.patches == [
        ("gpu-01", {"metadata": {"resourceVersion": "100", "labels": H100["labels"]}}),
    ]
    labels = api.client.nodes["gpu-01"]["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "gpu-01"  # others untouched
    assert {k: labels[k] for k in nl.MANAGED_LABELS} == H100["labels"]


def test_second_run_is_unchanged(api):
    api.client = FakeClient(node("gpu-01"))
    args = {"nodes": [{"name": "gpu-01", "gpu": H100["expected"]}], "taint": {"state": "present"}}
    assert run(args).result["changed"] is True
    second = run(args)
    assert second.result["changed"] is False
    assert len(api.client.patches) == 1


def test_node_that_lost_its_gpu_gets_labels_and_taint_removed(api):
    case = recorded("node_gpu_lost")
    api.client = FakeClient(case["node"])
    out = run({"nodes": [{"name": "gpu-02", "gpu": case["gpu"]}], "taint": {"state": "present"}})
    assert out.result["changed"] is True
    assert api.client.patches == [("gpu-02", case["expected_patch"])]
    live = api.client.nodes["gpu-02"]
    assert not set(nl.MANAGED_LABELS) & set(live["metadata"]["labels"])
    assert live["metadata"]["labels"]["topology.example.org/rack"] == "r12"
    assert live["spec"]["taints"] == [{"key": "dedicated", "value": "research", "effect": "PreferNoSchedule"}]


@pytest.mark.parametrize(
    "taints, state, gpu, expected_taints",
    [
        (None, "present", H100["expected"], [OURS]),
        ([OURS], "absent", H100["expected"], None),
        ([OURS], "present", NO_GPU, None),
        ([dict(OURS, value="old")], "present", H100["expected"], [OURS]),
    ],
    ids=["add", "remove-absent", "remove-no-gpu", "update-value"],
)
def test_taint_add_and_remove(api, taints, state, gpu, expected_taints):
    labels = nl.gpu_labels(gpu)
    api.client = FakeClient(node("n1", labels=labels, taints=taints))
    out = run({"nodes": [{"name": "n1", "gpu": gpu}], "taint": {"state": state}})
    assert out.result["changed"] is True
    assert api.client.nodes["n1"]["spec"].get("taints") == expected_taints
    assert "labels" not in api.client.patches[0][1]["metadata"]  # only the taint changed


def test_taint_ignored_by_default(api):
    api.client = FakeClient(node("n1", labels=nl.gpu_labels(T4["expected"]), taints=[OURS]))
    out = run({"nodes": [{"name": "n1", "gpu": NO_GPU}]})
    assert out.result["changed"] is True
    assert api.client.nodes["n1"]["spec"]["taints"] == [OURS]


def test_check_mode_reports_but_never_writes(api):
    case = recorded("node_gpu_lost")
    api.client = FakeClient(node("gpu-01"), case["node"])
    before = copy.deepcopy(api.client.nodes)
    out = run(
        {
            "nodes": [{"name": "gpu-01", "gpu": H100["expected"]}, {"name": "gpu-02", "gpu": case["gpu"]}],
            "taint": {"state": "present"},
        },
        check_mode=True,
    )
    assert out.result["changed"] is True
    assert [n["changed"] for n in out.result["nodes"]] == [True, True]
    assert api.client.patches == []
    assert api.client.nodes == before


def test_diff_shows_managed_labels_and_taints(api):
    api.client = FakeClient(node("gpu-01", labels={"nvidia.com/gpu.count": "4"}), node("cpu-01"))
    out = run(
        {
            "nodes": [{"name": "gpu-01", "gpu": T4["expected"]}, {"name": "cpu-01", "gpu": NO_GPU}],
            "taint": {"state": "present"},
        },
        diff=True,
    )
    assert out.result["diff"] == {
        "before": {
            "gpu-01": {"labels": {"nvidia.com/gpu.count": "4"}, "taints": []},
            "cpu-01": {"labels": {}, "taints": []},
        },
        "after": {
            "gpu-01": {"labels": dict(sorted(T4["labels"].items())), "taints": [OURS]},
            "cpu-01": {"labels": {}, "taints": []},
        },
    }


def test_no_diff_key_without_diff_mode(api):
    api.client = FakeClient(node("gpu-01"))
    assert "diff" not in run({"nodes": [{"name": "gpu-01", "gpu": T4["expected"]}]}).result


@pytest.mark.parametrize(
    "fail_on, message",
    [
        ({("get", "gpu-02"): 403}, "node gpu-02: reading the Node failed: 403 Reason: Forbidden"),
        ({("patch", "gpu-02"): 403}, "node gpu-02: updating GPU labels/taints failed: 403 Reason: Forbidden"),
    ],
    ids=["get", "patch"],
)
def test_api_error_names_the_node(api, fail_on, message):
    api.client = FakeClient(node("gpu-01"), node("gpu-02"), fail_on=fail_on)
    out = run({"nodes": [{"name": "gpu-01", "gpu": T4["expected"]}, {"name": "gpu-02", "gpu": H100["expected"]}]})
    assert out.failed
    assert out.result["msg"] == f"gpu_node_labels: {message}"
    assert out.result["changed"] is True  # gpu-01 was labelled before the failure
    assert [n["name"] for n in out.result["nodes"]] == ["gpu-01"]


class RacingClient(FakeClient):
    """Another writer updates the node right after each of our reads, `races` times."""

    def __init__(self, *nodes, races):
        super().__init__(*nodes)
        self.races = races
        self.reads = 0

    def get(self, resource, name):
        instance = super().get(resource, name)
        self.reads += 1
        if self.races:
            self.races -= 1
            live = self.nodes[name]
            live["metadata"]["labels"]["example.org/touched"] = str(self.reads)
            live["metadata"]["resourceVersion"] = str(int(live["metadata"]["resourceVersion"]) + 1)
        return instance


def test_concurrent_update_is_read_again_not_overwritten(api):
    api.client = RacingClient(node("gpu-01"), races=1)
    out = run({"nodes": [{"name": "gpu-01", "gpu": T4["expected"]}]})
    assert not out.failed and out.result["changed"] is True
    assert api.client.reads == 2
    assert api.client.nodes["gpu-01"]["metadata"]["labels"]["example.org/touched"] == "1"


def test_endless_conflicts_fail_naming_the_node(api):
    api.client = RacingClient(node("gpu-01"), races=10)
    out = run({"nodes": [{"name": "gpu-01", "gpu": T4["expected"]}]})
    assert out.failed
    assert out.result["msg"] == (
        "gpu_node_labels: node gpu-01: updating GPU labels/taints failed 3 times on concurrent updates: "
        "409 Reason: Conflict"
    )


def test_missing_node_fails_or_warns(api):
    api.client = FakeClient(node("gpu-01"))
    nodes = [{"name": "gpu-09", "gpu": T4["expected"]}, {"name": "gpu-01", "gpu": T4["expected"]}]
    failed = run({"nodes": nodes})
    assert failed.failed and "node gpu-09 is not in the cluster" in failed.result["msg"]
    warned = run({"nodes": nodes, "missing_nodes": "warn"})
    assert not warned.failed and warned.result["changed"] is True
    assert warned.result["nodes"][0] == {"name": "gpu-09", "changed": False, "skipped": True}
    assert api.warnings == ["gpu_node_labels: node gpu-09 is not in the cluster; skipped"]


def test_render_mode_needs_no_api(api, monkeypatch):
    def no_api(module):
        raise AssertionError("render mode must not build an API client")

    monkeypatch.setattr(gpu_node_labels, "get_api_client", no_api)
    out = run(
        {
            "mode": "render",
            "taint": {"state": "present"},
            "nodes": [{"name": "cpu-01", "gpu": NO_GPU}, {"name": "gpu-01", "gpu": H100["expected"]}],
        }
    )
    assert out.result["changed"] is False
    assert out.result["objects"] == [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "gpu-01", "labels": H100["labels"]},
            "spec": {"taints": [OURS]},
        }
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        ({"nodes": [{"name": "a", "gpu": {"count": -2}}]}, "node a: gpu.count must be a non-negative integer"),
        ({"nodes": [{"name": "a"}, {"name": "a"}]}, "node a is listed twice"),
        ({"nodes": [{"name": "a"}], "taint": {"state": "on"}}, "value of state must be one of"),
        ({"nodes": [{"gpu": {}}]}, "missing required arguments: name"),
    ],
    ids=["bad-count", "duplicate", "bad-taint-state", "no-name"],
)
def test_bad_input_rejected_before_any_api_call(api, args, message):
    api.client = FakeClient()
    out = run(args)
    assert out.failed and message in out.result["msg"]
    assert api.client.patches == []
