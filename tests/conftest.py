"""Shared pytest setup: make the checkout importable as the collection and locate
the upstream manifests/schemas that live outside the repository."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS_DIR = REPO_ROOT / "collections"

# `ansible_collections.researchops.mlops` resolves through the link
# collections/ansible_collections/researchops/mlops -> repository root.
if str(COLLECTIONS_DIR) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_DIR))


def upstream_dir() -> Path:
    """Offline copy of the pinned upstream files (never copied into the repo)."""
    return Path(os.environ.get("MLOPS_UPSTREAM_DIR", REPO_ROOT.parent / "shared" / "upstream")).resolve()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def upstream() -> Path:
    path = upstream_dir()
    if not (path / "README.md").is_file():
        pytest.fail(f"upstream manifests not found at {path}: set MLOPS_UPSTREAM_DIR")
    return path


@pytest.fixture(scope="session")
def ansible_env() -> dict[str, str]:
    """Environment for running ansible-playbook from the checkout."""
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(REPO_ROOT / "ansible.cfg")
    env["MLOPS_UPSTREAM_DIR"] = str(upstream_dir())
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env
