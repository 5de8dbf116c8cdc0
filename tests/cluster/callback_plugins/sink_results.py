# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Test-only callback: one JSON line per task result in $SINK_RESULTS_FILE (task, action,
status, changed, and the apply sink's object lists), so the cluster tests can say which
task changed which object without printing the large results."""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: sink_results
type: aggregate
short_description: JSON lines of task results for the cluster tests
description: Writes one JSON line per task result to the file named by SINK_RESULTS_FILE.
requirements: [SINK_RESULTS_FILE set]
"""

KEYS = ("applied", "drifted", "unchanged", "objects", "msg", "nodes", "waited")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "sink_results"
    CALLBACK_NEEDS_ENABLED = True

    def _write(self, result, status):
        path = os.environ.get("SINK_RESULTS_FILE")
        if not path:
            return
        data = result._result
        record = {"task": result._task.get_name(), "action": result._task.action, "status": status, "changed": bool(data.get("changed"))}
        record.update({key: data[key] for key in KEYS if key in data and not data.get("_ansible_no_log")})
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record, default=str) + "\n")

    def v2_runner_on_ok(self, result):
        self._write(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._write(result, "skipped")
