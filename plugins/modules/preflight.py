#!/usr/bin/python
# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Documentation of the researchops.mlops.preflight action (controller only)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: preflight
short_description: Check the whole inventory before any host changes, and report every problem at once
version_added: 0.1.0
author: ResearchOps developers (@researchops)
description:
  - Runs on the controller, in the Ansible process (action plugin); touches no host.
  - O(scope=controller) checks the groups, node names and addresses, version pins, secrets,
    platform settings, the argument spec of every role that will run (against role
    defaults overridden by the inventory, templated where the role runs) and every
    pipeline spec with the C(researchops.mlops.pipeline_spec) and
    C(researchops.mlops.pipeline_objects) filters.
  - O(scope=hosts) checks the facts and C(researchops.mlops.node_probe) results
    gathered on the nodes (OS, architecture, pinned checksum per architecture, memory
    cgroup, kernel modules, NVIDIA driver, free disk, clock skew, registry mirrors).
  - Fails once, listing every problem grouped by host or area; each names the
    variable, its value (secrets hidden) and the fix.
options:
  scope:
    description: Which checks to run.
    type: str
    choices: [controller, hosts]
    default: controller
  hosts:
    description: Hosts whose gathered facts are checked (O(scope=hosts)).
    type: list
    elements: str
    default: []
  probe_var:
    description: Host variable holding the registered node_probe result.
    type: str
    default: __preflight_probe
  controller_time:
    description: Controller clock to compare the nodes' clocks with (default, per host, C(__preflight_probe_time)).
    type: float
  supported_os:
    description: Distribution -> supported major versions.
    type: dict
    default: {}
  supported_arch:
    description: Supported CPU architectures.
    type: list
    elements: str
    default: []
  k3s_token_required:
    description: Refuse an inventory without k3s_token.
    type: bool
    default: true
  known_secrets:
    description: Documented example values refused for every secret.
    type: list
    elements: str
    default: []
  removed_variables:
    description: Removed variable -> replacement.
    type: dict
    default: {}
  max_time_skew:
    description: Largest clock difference in seconds.
    type: int
    default: 30
  min_free_gib:
    description: Free space needed per probed path, GiB.
    type: float
    default: 10
  cluster_version_check:
    description: Refuse a k3s downgrade of a reachable cluster (apply sink, kubeconfig present).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Check the inventory
  researchops.mlops.preflight:
    scope: controller
    known_secrets: [change-me]
"""

RETURN = r"""
problems:
  description: Problems by area (host, group, platform, versions, secrets, pipelines).
  returned: always
  type: dict
seconds:
  description: Time the checks took.
  returned: always
  type: float
"""
