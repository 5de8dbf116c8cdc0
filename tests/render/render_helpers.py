"""Helpers of the render tests: a render of the platform from the embedded local inventory
(the render layer's fixtures and the cluster layer's use it), the user-provided Secrets
table of docs/secrets.md."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

# Playbook rendered by the suite (override to render a part while developing).
RENDER_PLAYBOOK = os.environ.get("MLOPS_RENDER_PLAYBOOK", "site.yml")
RENDER_TIMEOUT = 900


def ansible_playbook(env):
    return str(Path(env["PATH"].split(os.pathsep)[0]) / "ansible-playbook")


def start_render(repo_root, env, out, log):
    cmd = [ansible_playbook(env), RENDER_PLAYBOOK, "-i", "inventories/local", "-e", f"mlops_render_dir={out}"]
    handle = open(log, "w", encoding="utf-8")  # closed by finish_render
    return subprocess.Popen(cmd, cwd=repo_root, env=env, stdout=handle, stderr=subprocess.STDOUT, text=True), handle


def finish_render(process, handle, log, out):
    try:
        process.wait(timeout=RENDER_TIMEOUT)
    finally:
        handle.close()
    if process.returncode != 0:
        pytest.fail(f"ansible-playbook {RENDER_PLAYBOOK} (render into {out}) failed, rc={process.returncode}:\n" + Path(log).read_text()[-6000:])
    return out


def _token_pattern(token):
    """`<pipeline>-webhook` -> regex; angle-bracket placeholders match any DNS label part."""
    parts = re.split(r"(<[^>]+>)", token)
    return re.compile("".join("[a-z0-9.-]+" if part.startswith("<") else re.escape(part) for part in parts))


def user_provided_secrets(repo_root):
    """(namespace patterns, name patterns) of the rows of docs/secrets.md whose values the
    user provides (the 'provided by' column says vault)."""
    path = repo_root / "docs" / "secrets.md"
    rows = []
    header = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if header is None:
            header = [cell.lower() for cell in cells]
            continue
        if set(cells[0]) <= set("-: "):
            continue
        row = dict(zip(header, cells))
        if "vault" not in row.get("provided by", "").lower():
            continue
        namespaces = [_token_pattern(ns.strip().strip("`")) for ns in row["namespace"].split(",")]
        names = [_token_pattern(token) for token in re.findall(r"`([^`]+)`", row["name"])]
        rows.append((namespaces, names))
    assert rows, f"no user-provided (vault) row found in {path}"
    return rows
