#!/usr/bin/python
# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Test double of researchops.mlops.k8s_apply: same options, records what it is given
(one JSON line per call in $MLOPS_APPLY_RECORD) and changes nothing."""

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_apply
short_description: Test double of researchops.mlops.k8s_apply that records its arguments
version_added: 0.1.0
author: ResearchOps developers
description:
  - Used by tests/render/test_apply_path.py only; never shipped.
options: {}
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec={
            "kubeconfig": {"type": "raw", "no_log": True},
            "objects": {"type": "list", "elements": "dict", "required": True},
            "crds_from": {"type": "list", "elements": "dict", "default": []},
            "field_manager": {"type": "str", "default": "researchops"},
            "force_conflicts": {"type": "bool", "default": True},
            "workers": {"type": "int", "default": 8},
            "skip_unchanged": {"type": "bool", "default": True},
            "wait": {"type": "bool", "default": False},
            "wait_for": {"type": "list", "elements": "dict", "default": []},
            "wait_timeout": {"type": "int", "default": 600},
            "wait_sleep": {"type": "int", "default": 2},
        },
        supports_check_mode=True,
    )
    with open(os.environ["MLOPS_APPLY_RECORD"], "a", encoding="utf-8") as handle:
        handle.write(json.dumps({key: module.params[key] for key in ("objects", "crds_from", "wait", "wait_for", "field_manager")}, sort_keys=True) + "\n")
    module.exit_json(changed=False, results=[], applied=[], skipped=[], waited=[])


if __name__ == "__main__":
    main()
