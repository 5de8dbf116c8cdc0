"""Helpers of the render tests: the user-provided Secrets table of docs/secrets.md."""
from __future__ import annotations

import re


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
