# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Action plugin of researchops.mlops.k8s_render: renders on the controller, in-process.

Large object lists (the Argo Workflows manifest is 12 MB) cost seconds to serialise into
a module process; the render only touches the controller's disk, so it runs here."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.researchops.mlops.plugins.module_utils.k8s_objects import ObjectError
from ansible_collections.researchops.mlops.plugins.module_utils.k8s_render import ARGUMENT_SPEC, render


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        check_mode = bool(self._task.check_mode if self._task.check_mode is not None else self._play_context.check_mode)
        diff_mode = bool(self._task.diff if self._task.diff is not None else self._play_context.diff)
        try:
            rendered = render(args["dest"], args["phase"], args["component"], args["objects"], check_mode, args["phases"])
        except (ObjectError, OSError) as e:
            raise AnsibleActionFail(f"render of {args['phase']}/{args['component']} failed: {e}") from e
        diff = rendered.pop("diff")
        result.update(rendered)
        if diff_mode:
            result["diff"] = diff
        return result
