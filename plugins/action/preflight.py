# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Action plugin of researchops.mlops.preflight: every inventory check, in-process on the
controller, reported at once. The checks live in plugin_utils/preflight.py."""

from __future__ import annotations

import os
import time

from ansible.errors import AnsibleActionFail

from ansible_collections.researchops.mlops.plugins.filter.pipeline import pipeline_objects, pipeline_spec
from ansible_collections.researchops.mlops.plugins.plugin_utils import preflight
from ansible_collections.researchops.mlops.plugins.plugin_utils.action import ValidatedAction

ARGUMENT_SPEC = {
    "scope": {"type": "str", "choices": ["controller", "hosts"], "default": "controller"},
    "hosts": {"type": "list", "elements": "str", "default": []},
    "probe_var": {"type": "str", "default": "__preflight_probe"},
    "controller_time": {"type": "float"},
    "supported_os": {"type": "dict", "default": {}},
    "supported_arch": {"type": "list", "elements": "str", "default": []},
    "k3s_token_required": {"type": "bool", "default": True},
    "known_secrets": {"type": "list", "elements": "str", "default": [], "no_log": False},
    "removed_variables": {"type": "dict", "default": {}},
    "max_time_skew": {"type": "int", "default": 30},
    "min_free_gib": {"type": "float", "default": 10},
    "cluster_version_check": {"type": "bool", "default": True},
}
ROLES_DIR = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "roles"))


def running_versions(kubeconfig, timeout=5):
    """{node: kubeletVersion} of the cluster behind kubeconfig, {} when not reachable."""
    try:
        from kubernetes import client, config
    except ImportError:
        return {}
    try:
        api_client = config.new_client_from_config(config_file=kubeconfig)
        nodes = client.CoreV1Api(api_client).list_node(_request_timeout=timeout)
    except Exception:  # no cluster yet (first install) or unreachable: nothing to compare
        return {}
    return {n.metadata.name: n.status.node_info.kubelet_version for n in nodes.items}


class ActionModule(ValidatedAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def run(self, tmp=None, task_vars=None):
        result, args, _check_mode, _diff_mode = self.begin(tmp, task_vars)
        started = time.monotonic()
        ctx = preflight.Context(self._loader, self._templar, task_vars["hostvars"], task_vars["groups"], task_vars,
                                ROLES_DIR, args)
        if args["scope"] == "controller":
            problems = preflight.check_controller(ctx, pipeline_spec, pipeline_objects)
            scope = ctx.controller()
            kubeconfig = scope.get("mlops_kubeconfig")
            if (args["cluster_version_check"] and scope.get("mlops_k8s_sink") == "apply"
                    and isinstance(kubeconfig, str) and os.path.isfile(kubeconfig)):
                preflight.check_cluster_version(ctx, problems, running_versions(kubeconfig))
        else:
            probes = {}
            for host in args["hosts"]:
                host_vars = task_vars["hostvars"][host]
                probe = host_vars.get(args["probe_var"]) or {}
                if probe.get("skipped"):
                    continue  # preflight_node_checks: false for this host
                probes[host] = {
                    "facts": probe.get("facts") or host_vars.get("ansible_facts") or {},
                    "probe": probe,
                    "unreachable": not probe or bool(probe.get("unreachable")),
                    "error": probe.get("msg") or "no answer to the read-only probe (see its UNREACHABLE/FAILED message above)",
                    "address": host_vars.get("ansible_host", host),
                }
            problems = preflight.check_hosts(ctx, probes, args["controller_time"])
        result["seconds"] = round(time.monotonic() - started, 3)
        if len(problems):
            raise AnsibleActionFail(problems.report(), result=result)
        result["problems"] = {}
        result["msg"] = f"{args['scope']} checks passed"
        return result
