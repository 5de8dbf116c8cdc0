"""The head the collection's action plugins share (plugin_utils/action.py). What ActionBase
does with it is ansible-core's: lib/ansible/plugins/action/__init__.py, ActionBase.run
(refuses options outside _VALID_ARGS with "Invalid options for <action>") and
ActionBase.validate_argument_spec (ArgumentSpecValidator over the task's args)."""
from __future__ import annotations

from unittest.mock import MagicMock

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.researchops.mlops.plugins.plugin_utils.action import ValidatedAction, valid_args


class Probe(ValidatedAction):
    ARGUMENT_SPEC = {
        "name": {"type": "str", "required": True},
        "count": {"type": "int", "default": 3, "aliases": ["n"]},
    }
    PASSED_THROUGH = frozenset({"objects"})

    def run(self, tmp=None, task_vars=None):
        return self.begin(tmp, task_vars)


def probe(args, task_check=None, task_diff=None, play_check=False, play_diff=False):
    task = MagicMock(args=args, async_val=0, check_mode=task_check, diff=task_diff, action="researchops.mlops.probe")
    connection = MagicMock()
    connection._shell.tmpdir = "/tmp/probe"
    play_context = MagicMock(check_mode=play_check, diff=play_diff)
    return Probe(task, connection, play_context, loader=None, templar=None)


def test_options_validated_with_defaults_and_passed_through_ones_untouched():
    objects = [{"kind": "ConfigMap"}]
    result, args, check_mode, diff_mode = probe({"name": "x", "objects": objects}).run(task_vars={})
    assert result == {}
    assert args["name"] == "x" and args["count"] == 3
    assert args["objects"] is objects  # neither checked nor copied
    assert (check_mode, diff_mode) == (False, False)


def test_an_alias_is_accepted_and_coerced():
    _result, args, _check, _diff = probe({"name": "x", "n": "7"}).run(task_vars={})
    assert args["count"] == 7


@pytest.mark.parametrize("task_check, task_diff, play_check, play_diff, expected", [
    (None, None, True, True, (True, True)),      # the play's / command line's
    (False, False, True, True, (False, False)),  # the task's keyword wins
    (True, True, False, False, (True, True)),
])
def test_check_and_diff_mode_task_keyword_first_then_play(task_check, task_diff, play_check, play_diff, expected):
    _result, _args, check_mode, diff_mode = probe({"name": "x"}, task_check, task_diff, play_check, play_diff).run(task_vars={})
    assert (check_mode, diff_mode) == expected


def test_a_bad_value_fails_naming_the_action_and_the_option():
    with pytest.raises(AnsibleActionFail, match=r"^probe: .*count"):
        probe({"name": "x", "count": "many"}).run(task_vars={})


def test_a_missing_required_option_fails():
    with pytest.raises(AnsibleActionFail, match=r"^probe: missing required arguments: name"):
        probe({}).run(task_vars={})


def test_an_unknown_option_is_refused_by_action_base():
    with pytest.raises(AnsibleActionFail, match=r"Invalid options for researchops.mlops.probe: colour"):
        probe({"name": "x", "colour": "red"}).run(task_vars={})


def test_valid_args_are_options_aliases_and_passed_through():
    assert Probe._VALID_ARGS == {"name", "count", "n", "objects"}
    assert valid_args({"a": {"aliases": ["b"]}}, {"c"}) == {"a", "b", "c"}


def test_the_collection_action_plugins_share_the_head():
    from ansible_collections.researchops.mlops.plugins.action import k8s_apply, k8s_render, preflight

    for plugin in (k8s_apply, k8s_render, preflight):
        assert issubclass(plugin.ActionModule, ValidatedAction)
        assert "begin" not in vars(plugin.ActionModule)
    # k8s_apply keeps its option names (kubernetes.core's auth options and their aliases)
    # and takes `objects` as given.
    assert k8s_apply.ActionModule._VALID_ARGS == (
        frozenset(k8s_apply.OPTIONS_SPEC) | {"objects"}
        | {alias for spec in k8s_apply.OPTIONS_SPEC.values() for alias in spec.get("aliases", ())}
    )
    assert k8s_render.ActionModule._VALID_ARGS == frozenset(k8s_render.ARGUMENT_SPEC)
    assert preflight.ActionModule._VALID_ARGS == frozenset(preflight.ARGUMENT_SPEC)


def test_upstream_crds_reads_through_the_lookup_keeps_only_crds_in_order_and_names_the_action():
    """ValidatedAction.upstream_crds (k8s_apply's and k8s_render's crds_from): the entries
    go to the upstream_manifest lookup with the task's variables; only the
    apiextensions.k8s.io CustomResourceDefinitions come back, in the lookup's order; a
    lookup error fails the task naming the action and crds_from."""
    from ansible.errors import AnsibleLookupError

    crd_a = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "a.x.io"}}
    crd_b = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "b.x.io"}}
    other_group = {"apiVersion": "example.org/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "c"}}
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}
    action = probe({"name": "x"})
    lookup = MagicMock()
    lookup.run.return_value = [crd_b, config_map, other_group, crd_a]
    action._shared_loader_obj = MagicMock()
    action._shared_loader_obj.lookup_loader.get.return_value = lookup
    entries = [{"path": "p", "url": "u", "sha256": "0" * 64}]
    task_vars = {"mlops_upstream_dir": "/up"}

    assert action.upstream_crds([], task_vars) == []
    assert not action._shared_loader_obj.lookup_loader.get.called
    assert action.upstream_crds(entries, task_vars) == [crd_b, crd_a]
    assert action._shared_loader_obj.lookup_loader.get.call_args.args == ("researchops.mlops.upstream_manifest",)
    lookup.run.assert_called_once_with(entries, variables=task_vars)

    lookup.run.side_effect = AnsibleLookupError("upstream_manifest: sha256 mismatch")
    with pytest.raises(AnsibleActionFail, match=r"^probe: crds_from: upstream_manifest: sha256 mismatch"):
        action.upstream_crds(entries, task_vars)
