# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Action plugin of researchops.mlops.k8s_render: renders on the controller, in-process.

Large object lists (the Argo Workflows manifest is 12 MB) cost seconds to serialise into
a module process; the render only touches the controller's disk, so it runs here. The
CRDs of pinned upstream manifests come by reference (crds_from) and are read here, as
k8s_apply does (plugin_utils/action.py, ValidatedAction.upstream_crds), and the object
list is passed through unvalidated (the argument-spec validator would deep-copy it;
render checks every object itself)."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail

from ansible_collections.researchops.mlops.plugins.module_utils.k8s_objects import ObjectError
from ansible_collections.researchops.mlops.plugins.module_utils.k8s_render import ARGUMENT_SPEC, render
from ansible_collections.researchops.mlops.plugins.plugin_utils.action import ValidatedAction

# Everything but the object list, which render checks object by object (check_object).
OPTIONS_SPEC = {key: value for key, value in ARGUMENT_SPEC.items() if key != "objects"}


class ActionModule(ValidatedAction):
    ARGUMENT_SPEC = OPTIONS_SPEC
    PASSED_THROUGH = frozenset({"objects"})

    def run(self, tmp=None, task_vars=None):
        result, args, check_mode, diff_mode = self.begin(tmp, task_vars)
        if "objects" not in args:
            raise AnsibleActionFail("k8s_render: missing required arguments: objects")
        if not isinstance(args["objects"], list):
            raise AnsibleActionFail(f"k8s_render: objects must be a list of Kubernetes objects, got {type(args['objects']).__name__}")
        try:
            objects = self.upstream_crds(args["crds_from"], task_vars) + args["objects"]
            rendered = render(args["dest"], args["phase"], args["component"], objects, check_mode, args["phases"], args["cache_dir"])
        except (ObjectError, OSError) as e:
            raise AnsibleActionFail(f"render of {args['phase']}/{args['component']} failed: {e}") from e
        diff = rendered.pop("diff")
        result.update(rendered)
        if diff_mode:
            result["diff"] = diff
        return result
