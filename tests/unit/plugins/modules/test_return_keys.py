"""No module of the collection returns a key that Ansible itself interprets.

A module that returns, say, a non-empty list named ``skipped`` makes Ansible show the
task as *skipping* and drop its ``changed`` (the apply sink did exactly that). The
reserved keys are read from the installed ansible-core, not typed in here:

- ``ansible/executor/task_result.py``: ``_IGNORE`` and ``_PRESERVE`` (keys the result
  cleaner treats specially) and every key that ``TaskResult`` looks up in the module's
  return data (``is_changed``/``is_skipped``/``is_failed``/``is_unreachable`` through
  ``_check_key`` and ``_return_data.get``; ``_BaseTaskResult._loop_results`` reads
  ``results`` as the per-item results of a loop, so a module's own ``results`` list is
  read as loop items), plus ``invocation`` (``_RawTaskResult.as_callback_task_result``
  strips it);
- ``ansible/executor/task_executor.py``, class ``TaskExecutor``: every key it reads from
  or writes into ``result`` (``rc`` turns into ``failed``, ``ansible_facts`` into host
  facts, ``attempts``/``retries`` of ``until`` loops, ...).

A module may return one of these keys only with Ansible's own meaning (ALLOWED).
"""

from __future__ import annotations

import ast
from pathlib import Path

import ansible.module_utils
import pytest
import yaml

# The executor's source is read from disk, not imported: ansible-test units runs the tests
# under plugins/modules with only ansible.module_utils importable from ansible-core.
ANSIBLE_DIR = Path(ansible.module_utils.__file__).resolve().parents[1]

MODULES = sorted((Path(__file__).resolve().parents[4] / "plugins" / "modules").glob("*.py"))

# Keys a module may return when it means exactly what Ansible reads them as.
ALLOWED = {
    "ansible_facts": "facts modules (gpu_facts) set host facts",
    "diff": "the before/after of --diff",
    "msg": "the message of a failure",
    "changed": "whether the module changed something",
}


def _string_keys(tree, names):
    """String constants used as keys of the variables `names`: x['k'], x.get('k'),
    'k' in x, 'k' not in x, and _check_key('k')."""
    keys = set()

    def named(node):
        if isinstance(node, ast.Name):
            return node.id in names
        return isinstance(node, ast.Attribute) and node.attr in names

    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and named(node.value) and isinstance(node.slice, ast.Constant):
            keys.add(node.slice.value)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args and isinstance(node.args[0], ast.Constant):
            if (node.func.attr == "get" and named(node.func.value)) or node.func.attr == "_check_key":
                keys.add(node.args[0].value)
        elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) and any(named(c) for c in node.comparators):
            keys.add(node.left.value)
    return {key for key in keys if isinstance(key, str)}


def reserved_result_keys():
    task_result = ast.parse((ANSIBLE_DIR / "executor" / "task_result.py").read_text())
    task_executor = ast.parse((ANSIBLE_DIR / "executor" / "task_executor.py").read_text())
    keys = {"invocation"}
    for node in task_result.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in ("_IGNORE", "_PRESERVE") for t in node.targets):
            keys |= set(ast.literal_eval(node.value))
    keys |= _string_keys(task_result, {"_return_data", "loop_res"})
    executor = [node for node in task_executor.body if isinstance(node, ast.ClassDef) and node.name == "TaskExecutor"]
    assert len(executor) == 1, "class TaskExecutor not found in ansible/executor/task_executor.py"
    keys |= _string_keys(executor[0], {"result", "res"})
    return {key for key in keys if not key.startswith("_")}


def return_keys(path):
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", None) == "RETURN" for target in node.targets):
            return set((yaml.safe_load(node.value.value) or {}).keys())
    raise AssertionError(f"{path.name} has no RETURN")


def test_the_reserved_keys_come_from_ansible_core():
    reserved = reserved_result_keys()
    # the keys the issue was about, found in ansible-core's own code
    assert {"skipped", "failed", "changed", "results", "invocation", "rc", "ansible_facts", "attempts"} <= reserved


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_module_returns_no_reserved_key(path):
    clashes = sorted(return_keys(path) & (reserved_result_keys() - set(ALLOWED)))
    assert not clashes, f"{path.name} RETURN documents keys Ansible interprets itself: {clashes}"
