"""Every in-cluster Job script reaches the Kubernetes API through the one client,
plugins/module_utils/incluster_client.py, and none carries a copy of it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPTS = sorted(ROOT.glob("roles/*/files/*.py")) + [ROOT / "plugins/module_utils/generate_secret.py"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_script_uses_the_shared_client(script):
    source = script.read_text(encoding="utf-8")
    tree = ast.parse(source, str(script))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "incluster_client" in imported
    for token in ("serviceaccount", "KUBERNETES_SERVICE_HOST", "ssl."):
        assert token not in source, f"{script.name} talks to the API itself ({token!r}); use incluster_client"
