#!/usr/bin/python
# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Test double of kubernetes.core.k8s / k8s_info: records the arguments the sink's
kubernetes_core engine passes (one JSON line per call in $MLOPS_APPLY_RECORD)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s
short_description: Test double of kubernetes.core.k8s that records its arguments
version_added: 0.1.0
author: ResearchOps developers (@researchops)
description:
  - Used by tests/render/test_apply_path.py only; never shipped.
options: {}
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule

OPTIONS = ("kubeconfig", "definition", "apply", "server_side_apply", "wait", "wait_condition", "wait_timeout",
           "api_version", "kind", "name", "namespace", "src", "template", "state")


def main():
    module = AnsibleModule(argument_spec={key: {"type": "raw"} for key in OPTIONS}, supports_check_mode=True)
    record = {key: module.params[key] for key in OPTIONS if module.params[key] is not None}
    record.pop("kubeconfig", None)
    with open(os.environ["MLOPS_APPLY_RECORD"], "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")
    module.exit_json(changed=False, result={}, resources=[])


if __name__ == "__main__":
    main()
