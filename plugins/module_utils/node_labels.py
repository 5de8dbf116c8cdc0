# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""GPU node labels and taint: what a node should carry (pure functions), the patch
from a live Node to that state, and the reconcile loop used by gpu_node_labels.

The label keys are NVIDIA GPU Feature Discovery's own, so the NVIDIA GPU Operator,
schedulers and workloads selecting on them keep working if GFD later takes over.
"""

from __future__ import annotations

import copy
import re

try:
    from kubernetes.dynamic.exceptions import ConflictError, DynamicApiError, NotFoundError
    from urllib3.exceptions import HTTPError as TransportError
except ImportError:  # the module reports the missing library before using these
    ConflictError = DynamicApiError = NotFoundError = TransportError = None

LABEL_PRESENT = "nvidia.com/gpu.present"
LABEL_PRODUCT = "nvidia.com/gpu.product"
LABEL_COUNT = "nvidia.com/gpu.count"
LABEL_MEMORY = "nvidia.com/gpu.memory"
LABEL_MIG_CAPABLE = "nvidia.com/mig.capable"
# Every key this code owns: set on GPU nodes, removed from nodes that lost their GPU.
MANAGED_LABELS = (LABEL_PRESENT, LABEL_PRODUCT, LABEL_COUNT, LABEL_MEMORY, LABEL_MIG_CAPABLE)

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
TAINT_STATES = ("present", "absent", "ignore")
# A Node is updated concurrently by the kubelet (status, heartbeats go elsewhere but
# labels/taints do change); on 409 Conflict the node is read again and re-planned.
CONFLICT_RETRIES = 3
DEFAULT_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule", "state": "ignore"}

LABEL_VALUE_MAX = 63
_INVALID_VALUE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_EDGE = re.compile(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$")


class NodeLabelError(Exception):
    """Bad input or an API failure, with the node it concerns in the message."""


def sanitize_label_value(value):
    """A valid label value from free text, GFD style: `NVIDIA H100 80GB HBM3` ->
    `NVIDIA-H100-80GB-HBM3`. Runs of other characters become one `-`; the result is at
    most 63 characters and starts and ends alphanumeric (may be empty)."""
    text = _INVALID_VALUE_CHARS.sub("-", str(value).strip())
    text = _EDGE.sub("", text)
    return _EDGE.sub("", text[:LABEL_VALUE_MAX])


def _has_usable_gpu(gpu, require_driver):
    count = gpu.get("count") or 0
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise NodeLabelError(f"gpu.count must be a non-negative integer, got {count!r}")
    return count > 0 and (gpu.get("driver_version") or not require_driver)


def gpu_labels(gpu, require_driver=True):
    """Managed labels a node with this researchops_gpu fact should carry ({} when it has
    no usable GPU). Unknown values (product or memory from sysfs) are left out."""
    gpu = gpu or {}
    if not _has_usable_gpu(gpu, require_driver):
        return {}
    labels = {LABEL_PRESENT: "true", LABEL_COUNT: str(gpu["count"])}
    product = sanitize_label_value(gpu.get("product") or "")
    if product:
        labels[LABEL_PRODUCT] = product
    if isinstance(gpu.get("memory_mib"), int) and not isinstance(gpu.get("memory_mib"), bool):
        labels[LABEL_MEMORY] = str(gpu["memory_mib"])
    # nvidia-smi prints a MIG mode only for MIG-capable GPUs; sysfs cannot tell.
    if gpu.get("source") == "nvidia-smi":
        labels[LABEL_MIG_CAPABLE] = "true" if gpu.get("mig_mode") else "false"
    return labels


def normalize_taint(taint):
    """Taint settings with defaults filled and values checked."""
    merged = dict(DEFAULT_TAINT)
    merged.update({k: v for k, v in (taint or {}).items() if v is not None})
    if merged["state"] not in TAINT_STATES:
        raise NodeLabelError(f"taint.state must be one of {', '.join(TAINT_STATES)}, got {merged['state']!r}")
    if merged["effect"] not in TAINT_EFFECTS:
        raise NodeLabelError(f"taint.effect must be one of {', '.join(TAINT_EFFECTS)}, got {merged['effect']!r}")
    if not merged["key"]:
        raise NodeLabelError("taint.key must not be empty")
    return merged


def _same_taint(a, b):
    return a.get("key") == b.get("key") and a.get("effect") == b.get("effect")


def _taint_object(taint):
    return {"key": taint["key"], "value": taint["value"], "effect": taint["effect"]}


def desired_taints(current, has_gpu, taint):
    """The node's taint list after applying our taint policy. Other taints keep their
    order; ours is matched on key+effect (as kubectl taint does) and appended if new."""
    current = [dict(t) for t in (current or [])]
    if taint["state"] == "ignore":
        return current
    ours = _taint_object(taint)
    if taint["state"] == "present" and has_gpu:
        if any(_same_taint(t, ours) for t in current):
            return [dict(t, value=ours["value"]) if _same_taint(t, ours) else t for t in current]
        return current + [ours]
    return [t for t in current if not _same_taint(t, ours)]


def _strip_taint(t):
    """Compare taints on what we manage (timeAdded is set by the API server)."""
    return {k: t.get(k) for k in ("key", "value", "effect") if t.get(k) is not None}


def validate_nodes(nodes):
    """Check the `nodes` input: a list of {name, gpu}; names unique and non-empty."""
    if not isinstance(nodes, list):
        raise NodeLabelError(f"nodes must be a list of {{name, gpu}}, got {type(nodes).__name__}")
    seen = set()
    for position, node in enumerate(nodes):
        if not isinstance(node, dict) or not node.get("name"):
            raise NodeLabelError(f"nodes[{position}] needs a non-empty name, got {node!r}")
        if node["name"] in seen:
            raise NodeLabelError(f"nodes[{position}]: node {node['name']} is listed twice")
        if node.get("gpu") is not None and not isinstance(node["gpu"], dict):
            raise NodeLabelError(f"nodes[{position}] ({node['name']}): gpu must be a researchops_gpu fact (dict)")
        seen.add(node["name"])


def plan_node(node_object, gpu, taint, require_driver=True):
    """Compare a live Node (dict) with the desired GPU labels/taint.

    Returns {name, changed, before, after, patch}; before/after hold the managed labels
    and the full taint list; patch is a JSON merge patch (None when nothing changes)
    carrying the resourceVersion, so a concurrent update fails instead of being lost.
    """
    metadata = node_object.get("metadata") or {}
    name = metadata.get("name")
    labels = metadata.get("labels") or {}
    current_taints = [_strip_taint(t) for t in ((node_object.get("spec") or {}).get("taints") or [])]
    try:
        wanted = gpu_labels(gpu, require_driver)
    except NodeLabelError as e:
        raise NodeLabelError(f"node {name}: {e}") from e
    has_gpu = bool(wanted)
    new_taints = desired_taints(current_taints, has_gpu, taint)

    label_patch = {k: v for k, v in wanted.items() if labels.get(k) != v}
    label_patch.update({k: None for k in MANAGED_LABELS if k in labels and k not in wanted})

    before = {"labels": {k: labels[k] for k in MANAGED_LABELS if k in labels}, "taints": current_taints}
    after = {"labels": dict(sorted(wanted.items())), "taints": new_taints}
    before["labels"] = dict(sorted(before["labels"].items()))

    patch = None
    if label_patch or new_taints != current_taints:
        patch = {"metadata": {"resourceVersion": metadata.get("resourceVersion")}}
        if label_patch:
            patch["metadata"]["labels"] = label_patch
        if new_taints != current_taints:
            # spec.taints is replaced as a whole by a merge patch: send the full list.
            patch["spec"] = {"taints": new_taints or None}
        if not patch["metadata"]["resourceVersion"]:
            del patch["metadata"]["resourceVersion"]
    return {"name": name, "changed": patch is not None, "before": before, "after": after, "patch": patch}


def desired_node_objects(nodes, taint=None, require_driver=True):
    """Partial Node objects (apiVersion, kind, metadata.name, labels[, spec.taints]) for
    the render sink: one per node with a usable GPU, sorted by name. Server-side apply
    of these sets the labels; removal from nodes that lost their GPU is the module's
    job in apply mode (a partial object cannot say "remove")."""
    validate_nodes(nodes)
    taint = normalize_taint(taint)
    objects = []
    for node in sorted(nodes, key=lambda n: n["name"]):
        try:
            labels = gpu_labels(node.get("gpu"), require_driver)
        except NodeLabelError as e:
            raise NodeLabelError(f"node {node['name']}: {e}") from e
        if not labels:
            continue
        obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node["name"], "labels": labels}}
        if taint["state"] == "present":
            obj["spec"] = {"taints": [_taint_object(taint)]}
        objects.append(obj)
    return objects


def _api_message(error):
    summary = getattr(error, "summary", None)
    return summary() if callable(summary) else str(error)


class NodeLabeler:
    """Reconcile GPU labels/taint of the listed nodes through a kubernetes.core K8SClient
    (anything with resource(), get() and patch() of the same shape)."""

    def __init__(self, client, check_mode=False, missing_nodes="fail", warn=None):
        self.client = client
        self.check_mode = check_mode
        self.missing_nodes = missing_nodes
        self.warn = warn or (lambda msg: None)
        self._nodes = None
        self.results = []

    def _resource(self):
        if self._nodes is None:
            try:
                self._nodes = self.client.resource("Node", "v1")
            except (DynamicApiError, TransportError) as e:
                raise NodeLabelError(
                    f"cannot reach the Kubernetes API to list Node resources: {_api_message(e)}"
                ) from e
        return self._nodes

    def _get(self, name):
        try:
            return self.client.get(self._resource(), name=name).to_dict()
        except NotFoundError as e:
            if self.missing_nodes == "warn":
                self.warn(f"gpu_node_labels: node {name} is not in the cluster; skipped")
                return None
            raise NodeLabelError(f"node {name} is not in the cluster (is k3s_node_name right, has it joined?)") from e
        except (DynamicApiError, TransportError) as e:
            raise NodeLabelError(f"node {name}: reading the Node failed: {_api_message(e)}") from e

    def _patch(self, name, patch, last_attempt):
        try:
            self.client.patch(self._resource(), patch, name=name, content_type="application/merge-patch+json")
        except ConflictError as e:
            if not last_attempt:
                return False
            raise NodeLabelError(
                f"node {name}: updating GPU labels/taints failed {CONFLICT_RETRIES} times on concurrent "
                f"updates: {_api_message(e)}"
            ) from e
        except (DynamicApiError, TransportError) as e:
            raise NodeLabelError(f"node {name}: updating GPU labels/taints failed: {_api_message(e)}") from e
        return True

    def reconcile(self, nodes, taint=None, require_driver=True):
        """Returns the list of plans (without patches) in input order; patches nodes
        that need it unless in check mode."""
        validate_nodes(nodes)
        taint = normalize_taint(taint)
        self.results = results = []
        for node in nodes:
            plan = self._reconcile_one(node, taint, require_driver)
            results.append(plan)
        return results

    def _reconcile_one(self, node, taint, require_driver):
        for attempt in range(1, CONFLICT_RETRIES + 1):
            live = self._get(node["name"])
            if live is None:
                return {"name": node["name"], "changed": False, "skipped": True}
            plan = plan_node(live, node.get("gpu"), taint, require_driver)
            patch = plan.pop("patch")
            if not patch or self.check_mode:
                return plan
            if self._patch(node["name"], copy.deepcopy(patch), last_attempt=attempt == CONFLICT_RETRIES):
                return plan
        raise AssertionError("unreachable: the last attempt returns or raises")
