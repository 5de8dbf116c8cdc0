#!/usr/bin/python
# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Apply sink: server-side apply of a list of objects in ordered parallel waves."""

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_apply
short_description: Server-side apply a list of Kubernetes objects, CRDs first, drift corrected
version_added: 0.1.0
author: ResearchOps developers (@researchops)
description:
  - The apply half of the researchops sink (role C(researchops.mlops.k8s_sink) with
    C(mlops_k8s_sink=apply)). Built on the client of C(kubernetes.core) (same
    authentication options and environment variables as C(kubernetes.core.k8s)).
  - Objects are applied with server-side apply (field manager O(field_manager)) in waves
    of parallel requests (O(workers)). First wave, CustomResourceDefinitions and
    Namespaces; then every CRD of the list is waited C(Established); second wave,
    everything else.
  - Runs on the controller (an action plugin, like C(researchops.mlops.k8s_render)), so the
    object list is never serialised into a module process.
  - Each object is sent with the annotation C(researchops.io/applied-hash), the sha256 of
    the object as given. Before a wave, each resource type is listed once per namespace
    (full objects, not one GET per object) and every field the sink sends is compared
    with the live object. An object is left alone only when its live hash matches B(and)
    every one of those fields has the same value live (verified equal); fields only the
    live object has (defaults, other managers' fields) do not count. Anything else is
    sent; a hand edit of a field the sink owns (data, image, label, replicas...) or a
    deleted object is restored by the next run (drift correction, O(skip_unchanged)).
  - C(changed) is true when an object was created or its C(resourceVersion) moved; an
    apply that the API server found to be a no-op (a value it stores in another form,
    such as a CPU quantity written as a number) counts as unchanged. In check mode, an object counts as changed
    when the dry-run result differs from the live object.
  - With O(wait), every Deployment, StatefulSet and DaemonSet of the list is waited
    rolled out, and every O(wait_for) object is waited for too.
  - In check mode each object to be sent goes with C(dryRun=All), so the API server
    validates it (admission included) without storing it; custom resources whose CRD is
    created by the same list are reported as created without a request. With C(--diff)
    the diff shows the live object against the dry-run result, and each object's
    C(fields) names the drifted fields.
  - Failures name each object (C(Kind namespace/name (apiVersion))) and the API server's
    message; objects of a wave are all attempted before the module fails.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - kubernetes.core.k8s_auth_options
options:
  objects:
    description:
      - The Kubernetes objects.
      - At least one of O(objects), O(src) and O(crds_from) must be given.
    type: list
    elements: dict
    default: []
  src:
    description:
      - "Manifest files on the controller (multi-document YAML, or JSON such as a
        C(kind: List)); a relative path is relative to the playbook; their objects are
        applied after O(objects), in file order."
      - The files are read by the action itself, so their objects never go through task
        argument templating (a few MB of CRD schemas take seconds there); JSON is read
        about 20 times faster than YAML.
    type: list
    elements: path
    default: []
  crds_from:
    description:
      - Pinned upstream manifests (C(versions.yml) entries C({path, url, sha256})) whose
        CustomResourceDefinitions are applied before O(objects), in file order.
      - Read by the action itself through the P(researchops.mlops.upstream_manifest#lookup)
        lookup (same checksum check, same C(mlops_upstream_dir) and download cache,
        same parse cache), so megabytes of CRD schemas never travel through task
        arguments. The sink role passes C(k8s_sink_crds_from) here.
    type: list
    elements: dict
    default: []
  field_manager:
    description: Server-side apply field manager.
    type: str
    default: researchops
  force_conflicts:
    description: Take over fields owned by other field managers instead of failing on conflicts.
    type: bool
    default: true
  workers:
    description: Parallel API requests within one wave.
    type: int
    default: 8
  skip_unchanged:
    description:
      - Send nothing for objects verified equal to the live object (same applied hash and
        every sent field equal live). With C(false) every object is sent, as
        C(kubectl apply) does; the result is the same, only slower.
    type: bool
    default: true
  wait:
    description: Wait for the roll-out of Deployments, StatefulSets and DaemonSets of the list and for O(wait_for).
    type: bool
    default: false
  wait_for:
    description:
      - More objects to wait for when O(wait) is set (objects created by others, such as
        the Deployments an Argo CD Application makes from a Helm chart).
      - Without C(condition), Deployments, StatefulSets, DaemonSets and Pods are waited
        ready and other kinds to exist.
    type: list
    elements: dict
    default: []
    suboptions:
      apiVersion:
        description: API version.
        type: str
        aliases: [api_version]
      kind:
        description: Kind.
        type: str
      name:
        description: Name.
        type: str
      namespace:
        description: Namespace (namespaced kinds).
        type: str
      condition:
        description: Condition C({type, status}) to wait for.
        type: dict
  wait_timeout:
    description: Seconds each wait may take.
    type: int
    default: 600
  wait_sleep:
    description: Seconds between two polls of a wait.
    type: int
    default: 2
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
requirements:
  - kubernetes >= 24.2.0
notes:
  - Secret values never appear in the diff (their keys are shown with C(<hidden>)); the sink
    role also applies vault-provided Secrets with C(no_log).
"""

EXAMPLES = r"""
- name: Apply the argocd objects and wait for their roll-out
  researchops.mlops.k8s_apply:
    kubeconfig: "{{ mlops_kubeconfig }}"
    objects: "{{ __argocd_objects }}"
    wait: true
    wait_for:
      - apiVersion: apps/v1
        kind: Deployment
        name: cert-manager-webhook
        namespace: cert-manager

- name: Apply a manifest file as it is (read by the action; relative to the playbook)
  researchops.mlops.k8s_apply:
    kubeconfig: "{{ mlops_kubeconfig }}"
    src: [files/crds.json]
"""

RETURN = r"""
objects:
  description:
    - One entry per object with C(action) C(created), C(updated) or C(unchanged)
      (verified equal to the live object, or sent and found a no-op by the API server).
    - Updated objects also have C(fields), the paths whose live value differed from the
      sent one (C(data.key), C(spec.template.spec.containers[0].image)...), and
      C(drifted), true when the object's content did not change since the last apply but
      the live object had been changed by other means.
  returned: always
  type: list
  elements: dict
  sample:
    - {apiVersion: apps/v1, kind: Deployment, namespace: argo, name: argo-server, action: updated,
       drifted: true, fields: ["spec.template.spec.containers[0].image"]}
applied:
  description: Objects created or changed, as C(Kind namespace/name).
  returned: always
  type: list
  elements: str
drifted:
  description: The subset of RV(applied) restored after a change made by other means.
  returned: always
  type: list
  elements: str
unchanged:
  description: Objects verified equal to the live object (nothing stored).
  returned: always
  type: list
  elements: str
waited:
  description: Waits done, with C(object), C(ready) and C(seconds).
  returned: always
  type: list
  elements: dict
"""

import traceback

from ansible_collections.researchops.mlops.plugins.module_utils.k8s_apply import ARGUMENT_SPEC, ApiAdapter, applier_for, run_apply

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

    HAS_KUBERNETES_CORE = True
    KUBERNETES_CORE_ERROR = None
except ImportError:
    HAS_KUBERNETES_CORE = False
    KUBERNETES_CORE_ERROR = traceback.format_exc()
    AUTH_ARG_SPEC = {}


def run(module, adapter):
    params = module.params
    if params["crds_from"]:
        module.fail_json(msg="k8s_apply: crds_from is read by the action plugin on the controller, not by the module")
    if not params["objects"] and not params["src"]:
        module.fail_json(msg="k8s_apply: give objects, src (manifest files) or both")
    result = run_apply(applier_for(adapter, params, module.check_mode, module._diff), params["objects"], module._diff, src=params["src"])
    if result.get("failed"):
        module.fail_json(**result)
    module.exit_json(**result)


def main():
    if not HAS_KUBERNETES_CORE:
        from ansible.module_utils.basic import AnsibleModule, missing_required_lib

        module = AnsibleModule(argument_spec={}, bypass_checks=True)
        module.fail_json(msg=missing_required_lib("kubernetes.core (collection)"), exception=KUBERNETES_CORE_ERROR)
    argument_spec = dict(AUTH_ARG_SPEC)
    argument_spec.update(ARGUMENT_SPEC)
    module = AnsibleK8SModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        client = get_api_client(module=module)
    except CoreException as e:
        module.fail_from_exception(e)
    run(module, ApiAdapter(client, poll_interval=module.params["wait_sleep"]))


if __name__ == "__main__":
    main()
