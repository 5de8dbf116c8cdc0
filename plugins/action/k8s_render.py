# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Action plugin of researchops.mlops.k8s_render: renders on the controller, in-process.

Large object lists (the Argo Workflows manifest is 12 MB) cost seconds to serialise into
a module process; the render only touches the controller's disk, so it runs here. The
CRDs of pinned upstream manifests come by reference (crds_from) and are read here, as
k8s_apply does (plugin_utils/action.py, ValidatedAction.upstream_crds)."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail

from ansible_collections.researchops.mlops.plugins.module_utils.k8s_objects import ObjectError
from ansible_collections.researchops.mlops.plugins.module_utils.k8s_render import ARGUMENT_SPEC, render
from ansible_collections.researchops.mlops.plugins.plugin_utils.action import ValidatedAction


class ActionModule(ValidatedAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def run(self, tmp=None, task_vars=None):
        result, args, check_mode, diff_mode = self.begin(tmp, task_vars)
        try:
            objects = self.upstream_crds(args["crds_from"], task_vars) + args["objects"]
            rendered = render(args["dest"], args["phase"], args["component"], objects, check_mode, args["phases"])
        except (ObjectError, OSError) as e:
            raise AnsibleActionFail(f"render of {args['phase']}/{args['component']} failed: {e}") from e
        diff = rendered.pop("diff")
        result.update(rendered)
        if diff_mode:
            result["diff"] = diff
        return result
