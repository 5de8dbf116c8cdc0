#!/usr/bin/python
# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Apply sink: server-side apply of a list of objects in ordered parallel waves."""

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_apply
short_description: Server-side apply a list of Kubernetes objects, CRDs first, unchanged objects skipped
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
  - Each object is sent with the annotation C(researchops.io/applied-hash), the sha256 of
    the object as given. Before a wave, the metadata of each resource type is listed once
    per namespace (not one GET per object); an object whose live hash equals the new one
    is skipped without a request (O(skip_unchanged)). Changes made to those objects by
    other means are therefore not reverted unless O(skip_unchanged=false).
  - C(changed) is true when an object was created or its C(resourceVersion) moved; an
    apply that the API server found to be a no-op counts as unchanged.
  - With O(wait), every Deployment, StatefulSet and DaemonSet of the list is waited
    rolled out, and every O(wait_for) object is waited for too.
  - In check mode each object is sent with C(dryRun=All), so the API server validates it
    (admission included) without storing it; custom resources whose CRD is created by
    the same list are reported as created without a request.
  - Failures name each object (C(Kind namespace/name (apiVersion))) and the API server's
    message; objects of a wave are all attempted before the module fails.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - kubernetes.core.k8s_auth_options
options:
  objects:
    description: The Kubernetes objects.
    type: list
    elements: dict
    required: true
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
    description: Skip objects whose live C(researchops.io/applied-hash) annotation equals the new hash.
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
"""

RETURN = r"""
objects:
  description: One entry per object with C(action) C(created), C(updated), C(unchanged)
    (sent, no change) or C(skipped) (hash unchanged, not sent).
  returned: always
  type: list
  elements: dict
  sample:
    - {apiVersion: v1, kind: Namespace, namespace: null, name: argocd, action: skipped}
applied:
  description: Objects sent to the API server, as C(Kind namespace/name).
  returned: always
  type: list
  elements: str
unchanged:
  description: Objects not sent because their content hash was unchanged.
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
    result = run_apply(applier_for(adapter, module.params, module.check_mode, module._diff), module.params["objects"], module._diff)
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
