#!/usr/bin/python
# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Label (and optionally taint) Kubernetes nodes from their researchops_gpu facts."""

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_node_labels
short_description: Set NVIDIA GPU Feature Discovery labels and the GPU taint on Kubernetes nodes
version_added: 0.1.0
author: ResearchOps developers (@researchops)
description:
  - Takes a list of nodes with the C(researchops_gpu) fact of each (from
    M(researchops.mlops.gpu_facts)) and makes every listed Node carry the NVIDIA GPU
    Feature Discovery labels C(nvidia.com/gpu.present), C(nvidia.com/gpu.product),
    C(nvidia.com/gpu.count), C(nvidia.com/gpu.memory) and C(nvidia.com/mig.capable),
    so that the NVIDIA device plugin, the GPU Operator and workloads selecting on those
    keys work the same way.
  - Removes those labels from listed nodes that no longer have a usable GPU. Other
    labels and nodes that are not listed are never touched.
  - Optionally manages one taint (default C(nvidia.com/gpu=present:NoSchedule)) on GPU
    nodes, matched on key and effect like C(kubectl taint).
  - Reads each Node and patches it only when a managed label or the taint differs, so
    C(changed) is exact; patches carry the Node's C(resourceVersion).
  - With I(mode=render) no API is contacted; the module returns the partial Node
    objects for the render sink.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ansible.builtin.action_common_attributes
requirements:
  - python >= 3.9
  - kubernetes >= 24.2.0
options:
  nodes:
    description:
      - The nodes to reconcile.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Kubernetes node name.
        type: str
        required: true
      gpu:
        description:
          - The node's C(researchops_gpu) fact. Empty or C(count=0) means no GPU.
        type: dict
        default: {}
  mode:
    description:
      - C(apply) reconciles the nodes through the API.
      - C(render) only computes the partial Node objects (return value C(objects)).
    type: str
    choices: [apply, render]
    default: apply
  require_driver:
    description:
      - Label a node as a GPU node only when its NVIDIA driver works (C(driver_version)
        known). A node whose GPUs are seen on the PCI bus but whose driver is missing
        is then treated as a node without GPU, so the device plugin is not scheduled
        there.
    type: bool
    default: true
  missing_nodes:
    description:
      - What to do with a listed node that is not in the cluster.
    type: str
    choices: [fail, warn]
    default: fail
  taint:
    description:
      - The GPU taint. Only pods tolerating it (the device plugin, GPU workloads) run on
        tainted GPU nodes.
    type: dict
    default: {}
    suboptions:
      state:
        description:
          - C(present) puts the taint on GPU nodes and removes it from listed nodes
            without GPU; C(absent) removes it from every listed node; C(ignore) leaves
            taints alone.
        type: str
        choices: [present, absent, ignore]
        default: ignore
      key:
        description: Taint key.
        type: str
        default: nvidia.com/gpu
      value:
        description: Taint value.
        type: str
        default: present
      effect:
        description: Taint effect.
        type: str
        choices: [NoSchedule, PreferNoSchedule, NoExecute]
        default: NoSchedule
attributes:
  check_mode:
    support: full
    details: Reads the nodes and reports what would change; never writes.
  diff_mode:
    support: full
  platform:
    platforms: posix
notes:
  - Do not run this together with NVIDIA GPU Feature Discovery on the same nodes; both
    would own the same label keys.
"""

EXAMPLES = r"""
- name: Label GPU nodes from their facts
  researchops.mlops.gpu_node_labels:
    kubeconfig: "{{ mlops_kubeconfig }}"
    nodes:
      - name: gpu-01
        gpu: "{{ hostvars['gpu-01'].researchops_gpu }}"
      - name: cpu-01
        gpu: "{{ hostvars['cpu-01'].researchops_gpu }}"

- name: Label and taint GPU nodes
  researchops.mlops.gpu_node_labels:
    kubeconfig: "{{ mlops_kubeconfig }}"
    nodes: "{{ gpu_nodes_list }}"
    taint:
      state: present

- name: Only compute the partial Node objects (render sink)
  researchops.mlops.gpu_node_labels:
    mode: render
    nodes:
      - name: gpu-01
        gpu: {count: 1, product: NVIDIA RTX A4000, memory_mib: 16376, driver_version: 550.90.07}
  register: gpu_nodes_rendered
"""

RETURN = r"""
nodes:
  description: One entry per listed node (apply mode).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Node name.
      type: str
    changed:
      description: Whether the node was (or in check mode would be) updated.
      type: bool
    skipped:
      description: True when the node is not in the cluster and I(missing_nodes=warn).
      type: bool
      returned: when skipped
    before:
      description: Managed labels and all taints before.
      type: dict
      sample: {labels: {}, taints: []}
    after:
      description: Managed labels and all taints after.
      type: dict
      sample: {labels: {nvidia.com/gpu.present: "true", nvidia.com/gpu.count: "8"}, taints: []}
objects:
  description: Partial Node objects (apiVersion, kind, metadata.name, labels, spec.taints) of the nodes with a usable GPU.
  returned: always
  type: list
  elements: dict
  sample:
    - apiVersion: v1
      kind: Node
      metadata:
        name: gpu-01
        labels:
          nvidia.com/gpu.present: "true"
          nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3
          nvidia.com/gpu.count: "8"
          nvidia.com/gpu.memory: "81559"
          nvidia.com/mig.capable: "true"
"""

import copy

from ansible_collections.kubernetes.core.plugins.module_utils.ansiblemodule import AnsibleModule
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
from ansible_collections.researchops.mlops.plugins.module_utils.node_labels import (
    NodeLabeler,
    NodeLabelError,
    desired_node_objects,
)


def argspec():
    spec = copy.deepcopy(AUTH_ARG_SPEC)
    spec.update(
        nodes=dict(
            type="list",
            elements="dict",
            required=True,
            options=dict(name=dict(type="str", required=True), gpu=dict(type="dict", default={})),
        ),
        mode=dict(type="str", choices=["apply", "render"], default="apply"),
        require_driver=dict(type="bool", default=True),
        missing_nodes=dict(type="str", choices=["fail", "warn"], default="fail"),
        taint=dict(
            type="dict",
            default={},
            options=dict(
                state=dict(type="str", choices=["present", "absent", "ignore"], default="ignore"),
                key=dict(type="str", default="nvidia.com/gpu", no_log=False),
                value=dict(type="str", default="present"),
                effect=dict(type="str", choices=["NoSchedule", "PreferNoSchedule", "NoExecute"], default="NoSchedule"),
            ),
        ),
    )
    return spec


def _diff(results):
    done = [r for r in results if not r.get("skipped")]
    return {
        "before": {r["name"]: r["before"] for r in done},
        "after": {r["name"]: r["after"] for r in done},
    }


def run(module):
    params = module.params
    try:
        objects = desired_node_objects(params["nodes"], params["taint"], params["require_driver"])
    except NodeLabelError as e:
        module.fail_json(msg=f"gpu_node_labels: {e}")
    if params["mode"] == "render":
        module.exit_json(changed=False, nodes=[], objects=objects)

    module.requires("kubernetes")
    try:
        client = get_api_client(module)
    except CoreException as e:
        module.fail_from_exception(e)
    labeler = NodeLabeler(client, check_mode=module.check_mode, missing_nodes=params["missing_nodes"], warn=module.warn)
    try:
        results = labeler.reconcile(params["nodes"], params["taint"], params["require_driver"])
    except NodeLabelError as e:
        changed = any(r["changed"] for r in labeler.results)
        module.fail_json(msg=f"gpu_node_labels: {e}", changed=changed, nodes=labeler.results)
    result = dict(changed=any(r["changed"] for r in results), nodes=results, objects=objects)
    if module._diff:
        result["diff"] = _diff(results)
    module.exit_json(**result)


def main():
    module = AnsibleK8SModule(
        module_class=AnsibleModule,
        argument_spec=argspec(),
        supports_check_mode=True,
        check_k8s=False,
    )
    run(module)


if __name__ == "__main__":
    main()
