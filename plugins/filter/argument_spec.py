# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Filter used by the preflight role to check inventory variables against role specs."""

from __future__ import annotations

DOCUMENTATION = r"""
name: argument_spec_optional
short_description: Make the top-level options of a role argument spec optional
version_added: 0.1.0
description:
  - Returns a copy of a role's C(argument_specs.<entry>.options) in which no top-level
    option is C(required) and no default is filled in.
  - The preflight role uses it to check the types and choices of the variables an
    inventory B(sets), before any role runs; whether a variable is required is left to
    the role itself, which also has its defaults loaded.
  - Options of nested dictionaries keep their C(required) flags.
options:
  _input:
    description: The C(options) mapping of an argument spec entry point.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Check inventory variables against the docker role's spec
  ansible.builtin.validate_argument_spec:
    argument_spec: "{{ __docker_spec.argument_specs.main.options | researchops.mlops.argument_spec_optional }}"
    provided_arguments:
      docker_log_max_size: 10m
  vars:
    __docker_spec: "{{ lookup('ansible.builtin.file', 'roles/docker/meta/argument_specs.yml') | from_yaml }}"
"""

RETURN = r"""
_value:
  description: The options with C(required) and C(default) removed at the top level.
  type: dict
"""

import copy
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError


def argument_spec_optional(options):
    if not isinstance(options, Mapping):
        raise AnsibleFilterError(
            f"argument_spec_optional: expected the options mapping of an argument spec, got {type(options).__name__}"
        )
    relaxed = {}
    for name, spec in options.items():
        if not isinstance(spec, Mapping):
            raise AnsibleFilterError(f"argument_spec_optional: option '{name}' is not a mapping: {spec!r}")
        spec = copy.deepcopy(dict(spec))
        spec.pop("required", None)
        spec.pop("default", None)
        relaxed[name] = spec
    return relaxed


class FilterModule:
    def filters(self):
        return {"argument_spec_optional": argument_spec_optional}
