# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Action plugin of researchops.mlops.k8s_apply: applies from the controller, in-process.

The object lists are large (the Argo Workflows CRDs alone are 12 MB of schemas). As a
module, each list was deep-copied by the argument-spec validation, serialised into the
module's arguments and parsed again by a new Python process; here the list stays in the
Ansible process and only the small options are validated. The API calls are the same
(kubernetes.core's client, same authentication options and K8S_AUTH_* variables), made
from the controller, which is where the sink runs (the cluster/platform/pipelines plays
target localhost)."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail

from ansible_collections.researchops.mlops.plugins.module_utils.k8s_apply import ARGUMENT_SPEC, ApiAdapter, applier_for, run_apply
from ansible_collections.researchops.mlops.plugins.plugin_utils.action import ValidatedAction

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

    IMPORT_ERROR = None
except ImportError as e:  # reported when the task runs
    AUTH_ARG_SPEC, IMPORT_ERROR = {}, e

# Everything but the object list, which Applier.prepare checks object by object.
OPTIONS_SPEC = dict(AUTH_ARG_SPEC, **{key: value for key, value in ARGUMENT_SPEC.items() if key != "objects"})


class ActionModule(ValidatedAction):
    ARGUMENT_SPEC = OPTIONS_SPEC
    PASSED_THROUGH = frozenset({"objects"})

    def run(self, tmp=None, task_vars=None):
        if IMPORT_ERROR is not None:
            raise AnsibleActionFail(f"k8s_apply needs the kubernetes.core collection and the kubernetes library: {IMPORT_ERROR}")
        result, params, check_mode, diff_mode = self.begin(tmp, task_vars)
        objects = params.get("objects", [])
        if not isinstance(objects, list):
            raise AnsibleActionFail(f"objects must be a list of Kubernetes objects, got {type(objects).__name__}")
        if not objects and not params.get("src") and not params.get("crds_from"):
            raise AnsibleActionFail("k8s_apply: give objects, src (manifest files), crds_from (upstream manifests) or several")
        try:
            client = get_api_client(**{key: value for key, value in params.items() if key in AUTH_ARG_SPEC})
        except CoreException as e:
            raise AnsibleActionFail(f"k8s_apply: {e}") from e
        objects = self.upstream_crds(params["crds_from"], task_vars) + objects
        applier = applier_for(ApiAdapter(client, poll_interval=params["wait_sleep"]), params, check_mode, diff_mode)
        result.update(run_apply(applier, objects, diff_mode, src=[self._loader.path_dwim(path) for path in params["src"]]))
        return result
