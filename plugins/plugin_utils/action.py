# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""The head every action plugin of the collection shares (k8s_apply, k8s_render,
preflight): the task's options checked against the plugin's argument spec, then the
task's check and diff mode.

Action plugins of a collection share controller code through plugin_utils (as
community.general and ansible.utils do); an action plugin file itself is loaded by
Ansible's plugin loader and is not meant to be imported by another one."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.researchops.mlops.plugins.module_utils.k8s_objects import is_crd

UPSTREAM_MANIFEST_LOOKUP = "researchops.mlops.upstream_manifest"


def valid_args(argument_spec, passed_through=frozenset()):
    """Every option name a task may give: the spec's options, their aliases, and the
    options passed through unchecked."""
    aliases = (alias for spec in argument_spec.values() for alias in spec.get("aliases", ()))
    return frozenset(argument_spec) | frozenset(aliases) | frozenset(passed_through)


class ValidatedAction(ActionBase):
    """Base of an action plugin whose options are ARGUMENT_SPEC.

    PASSED_THROUGH names options handed on as the task gave them, neither checked nor
    copied by the validator (which deep-copies what it checks): a list of thousands of
    Kubernetes objects. The plugin checks those itself."""

    TRANSFERS_FILES = False
    ARGUMENT_SPEC: dict = {}
    PASSED_THROUGH: frozenset = frozenset()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # ActionBase.run refuses any other option ("Invalid options for ...").
        cls._VALID_ARGS = valid_args(cls.ARGUMENT_SPEC, cls.PASSED_THROUGH)

    def begin(self, tmp, task_vars):
        """(result, args, check_mode, diff_mode): ActionBase.run's result, the options
        validated against ARGUMENT_SPEC with their defaults filled in (the PASSED_THROUGH
        ones as given), and whether the task runs in check mode and in diff mode (its own
        keyword, else the play's/command line's)."""
        result = super().run(tmp, task_vars)
        given = self._task.args
        validation = ArgumentSpecValidator(self.ARGUMENT_SPEC).validate(
            {key: value for key, value in given.items() if key not in self.PASSED_THROUGH}
        )
        if validation.errors.errors:
            name = self._task.action.rsplit(".", 1)[-1]
            raise AnsibleActionFail(f"{name}: {validation.errors.msg}", obj=given)
        args = dict(validation.validated_parameters)
        args.update((key, given[key]) for key in self.PASSED_THROUGH if key in given)
        check_mode = bool(self._task.check_mode if self._task.check_mode is not None else self._play_context.check_mode)
        diff_mode = bool(self._task.diff if self._task.diff is not None else self._play_context.diff)
        return result, args, check_mode, diff_mode

    def upstream_crds(self, entries, task_vars):
        """The CustomResourceDefinitions of pinned upstream manifests (versions.yml entries
        {path, url, sha256}, option crds_from), in file order, read here through the
        upstream_manifest lookup (checksum-verified, parse cached) so that megabytes of
        schemas never travel through task arguments (ansible-core finalises and copies
        every task argument)."""
        if not entries:
            return []
        lookup = self._shared_loader_obj.lookup_loader.get(UPSTREAM_MANIFEST_LOOKUP, loader=self._loader, templar=self._templar)
        try:
            return [obj for obj in lookup.run(entries, variables=task_vars) if is_crd(obj)]
        except AnsibleError as e:
            name = self._task.action.rsplit(".", 1)[-1]
            raise AnsibleActionFail(f"{name}: crds_from: {e}") from e
