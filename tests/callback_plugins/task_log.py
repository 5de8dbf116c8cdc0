# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Test callback: one JSON line per task result on a host in $TASK_LOG_FILE (play, task,
action, host, become, status, changed, and the apply sink's object lists unless the task
is no_log), so a test can prove which tasks ran where, and which task changed which
object, without printing the large results. Used by tests/playbooks/test_preflight.py and
tests/cluster/test_site_apply.py."""

from __future__ import annotations

DOCUMENTATION = r"""
name: task_log
type: aggregate
short_description: Log every task result per host to $TASK_LOG_FILE (tests only)
description: Writes one JSON line per task and host to the file named by TASK_LOG_FILE.
requirements: [enable in ANSIBLE_CALLBACKS_ENABLED, TASK_LOG_FILE set]
"""

import json
import os

from ansible.plugins.callback import CallbackBase

# What researchops.mlops.k8s_apply (and the modules the cluster tests run) report.
RESULT_KEYS = ("applied", "drifted", "unchanged", "objects", "msg", "nodes", "waited")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_log"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._play = ""

    def v2_playbook_on_play_start(self, play):
        self._play = play.get_name()

    def _log(self, result, status):
        path = os.environ.get("TASK_LOG_FILE")
        if not path:
            return
        task, data = result._task, result._result
        record = {"play": self._play, "task": task.get_name(), "action": task.action, "host": result._host.get_name(),
                  "become": bool(task.become), "status": status, "changed": bool(data.get("changed"))}
        record.update({key: data[key] for key in RESULT_KEYS if key in data and not data.get("_ansible_no_log")})
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")

    def v2_runner_on_ok(self, result):
        self._log(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._log(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._log(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._log(result, "unreachable")
