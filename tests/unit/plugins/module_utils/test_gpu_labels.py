"""Label/taint computation of module_utils/node_labels.py (pure functions)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.researchops.mlops.plugins.module_utils import node_labels as nl

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "nvidia_smi"
HOSTS = sorted(p.stem for p in FIXTURES.glob("*.yml") if not p.stem.startswith("node_"))
TAINT_PRESENT = nl.normalize_taint({"state": "present"})
OURS = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def fact(name):
    """The fact a recorded host yields: the fixture's expected values are that fact."""
    return yaml.safe_load((FIXTURES / f"{name}.yml").read_text())


@pytest.mark.parametrize("name", HOSTS)
def test_labels_of_recorded_hosts(name):
    case = fact(name)
    assert nl.gpu_labels(case["expected"]) == case["labels"]


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("NVIDIA H100 80GB HBM3", "NVIDIA-H100-80GB-HBM3"),
        ("NVIDIA A100-SXM4-40GB", "NVIDIA-A100-SXM4-40GB"),
        ("Tesla T4", "Tesla-T4"),
        ("Quadro RTX 4000 with Max-Q Design", "Quadro-RTX-4000-with-Max-Q-Design"),
        ("NVIDIA GeForce RTX 4090 (rev a1)", "NVIDIA-GeForce-RTX-4090-rev-a1"),
        ("  --weird//name__  ", "weird-name"),
        ("A" * 62 + " B", "A" * 62),
        ("x" * 80, "x" * 63),
        ("!!!", ""),
    ],
)
def test_sanitize_label_value(raw, expected):
    value = nl.sanitize_label_value(raw)
    assert value == expected
    assert len(value) <= 63


def test_labels_need_a_working_driver_unless_told_otherwise():
    sysfs_only = {"count": 2, "source": "sysfs", "driver_version": None}
    assert nl.gpu_labels(sysfs_only) == {}
    assert nl.gpu_labels(sysfs_only, require_driver=False) == {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.count": "2",
    }


@pytest.mark.parametrize("gpu", [None, {}, {"count": 0}, {"count": 0, "driver_version": "550.90.07"}])
def test_no_gpu_no_labels(gpu):
    assert nl.gpu_labels(gpu) == {}


@pytest.mark.parametrize("count", [-1, "2", 1.5, True])
def test_bad_count_rejected(count):
    with pytest.raises(nl.NodeLabelError, match="gpu.count must be a non-negative integer"):
        nl.gpu_labels({"count": count, "driver_version": "550.90.07"})


@pytest.mark.parametrize(
    "taint, message",
    [
        ({"state": "on"}, "taint.state must be one of"),
        ({"effect": "NoWay"}, "taint.effect must be one of"),
        ({"key": ""}, "taint.key must not be empty"),
    ],
)
def test_bad_taint_rejected(taint, message):
    with pytest.raises(nl.NodeLabelError, match=message):
        nl.normalize_taint(taint)


OTHER = {"key": "dedicated", "value": "research", "effect": "PreferNoSchedule"}


@pytest.mark.parametrize(
    "current, has_gpu, state, expected",
    [
        ([], True, "present", [OURS]),
        ([OTHER], True, "present", [OTHER, OURS]),
        ([OURS, OTHER], True, "present", [OURS, OTHER]),
        ([dict(OURS, value="old"), OTHER], True, "present", [OURS, OTHER]),
        ([OTHER, OURS], False, "present", [OTHER]),
        ([OTHER, OURS], True, "absent", [OTHER]),
        ([OTHER, OURS], True, "ignore", [OTHER, OURS]),
        ([dict(OURS, effect="NoExecute")], True, "absent", [dict(OURS, effect="NoExecute")]),
    ],
    ids=["add", "append", "keep-order", "update-value", "lost-gpu", "absent", "ignore", "other-effect"],
)
def test_desired_taints(current, has_gpu, state, expected):
    assert nl.desired_taints(current, has_gpu, nl.normalize_taint({"state": state})) == expected


def test_plan_for_a_node_that_lost_its_gpu_matches_the_recording():
    case = fact("node_gpu_lost")
    plan = nl.plan_node(case["node"], case["gpu"], TAINT_PRESENT)
    assert plan["changed"] is True
    assert plan["patch"] == case["expected_patch"]
    assert plan["after"] == {"labels": {}, "taints": [OTHER]}
    assert set(plan["before"]["labels"]) == set(nl.MANAGED_LABELS)


def test_plan_is_empty_when_node_already_matches():
    gpu = fact("eight_h100")["expected"]
    node = {
        "metadata": {"name": "gpu-01", "resourceVersion": "7", "labels": dict(nl.gpu_labels(gpu), other="x")},
        "spec": {"taints": [dict(OURS, timeAdded="2024-06-11T08:12:44Z")]},
    }
    plan = nl.plan_node(node, gpu, TAINT_PRESENT)
    assert plan["changed"] is False and plan["patch"] is None


def test_plan_only_sends_what_differs():
    gpu = fact("eight_h100")["expected"]
    labels = nl.gpu_labels(gpu)
    node = {
        "metadata": {"name": "gpu-01", "resourceVersion": "7", "labels": dict(labels, **{"nvidia.com/gpu.count": "4"})}
    }
    plan = nl.plan_node(node, gpu, nl.normalize_taint(None))
    assert plan["patch"] == {"metadata": {"resourceVersion": "7", "labels": {"nvidia.com/gpu.count": "8"}}}


def test_desired_node_objects_renders_gpu_nodes_only_sorted():
    nodes = [
        {"name": "gpu-b", "gpu": fact("one_gpu_t4")["expected"]},
        {"name": "cpu-a", "gpu": fact("no_gpu")["expected"]},
        {"name": "gpu-a", "gpu": fact("eight_h100")["expected"]},
        {"name": "broken", "gpu": fact("driver_missing")["expected"]},
    ]
    objects = nl.desired_node_objects(nodes, {"state": "present"})
    assert [o["metadata"]["name"] for o in objects] == ["gpu-a", "gpu-b"]
    assert objects[0] == {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "gpu-a", "labels": fact("eight_h100")["labels"]},
        "spec": {"taints": [OURS]},
    }
    assert "spec" not in nl.desired_node_objects(nodes)[0]


@pytest.mark.parametrize(
    "nodes, message",
    [
        ("gpu-01", "nodes must be a list"),
        ([{"gpu": {}}], r"nodes\[0\] needs a non-empty name"),
        ([{"name": "a"}, {"name": "a"}], "node a is listed twice"),
        ([{"name": "a", "gpu": "8"}], r"nodes\[0\] \(a\): gpu must be a researchops_gpu fact"),
        ([{"name": "a", "gpu": {"count": "8"}}], "node a: gpu.count must be a non-negative integer"),
    ],
)
def test_desired_node_objects_rejects(nodes, message):
    with pytest.raises(nl.NodeLabelError, match=message):
        nl.desired_node_objects(nodes)
