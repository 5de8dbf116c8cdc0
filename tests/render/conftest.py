"""Render the whole platform from the embedded local inventory, once per session (two
renders run side by side: the second one only feeds the determinism test), and give the
tests the tree, its objects and a strict validator built from the pinned upstream files."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml
from render_helpers import finish_render, start_render

from ansible_collections.researchops.mlops.plugins.module_utils import manifest_validation

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = REPO_ROOT / "roles" / "mlops" / "defaults" / "main"


@pytest.fixture(scope="session")
def renders(tmp_path_factory, repo_root, ansible_env):
    """Two independent renders of the platform, started together."""
    base = tmp_path_factory.mktemp("render")
    first, second = base / "first", base / "second"
    started = time.monotonic()
    runs = [(start_render(repo_root, ansible_env, out, base / f"{out.name}.log"), out) for out in (first, second)]
    trees = [finish_render(process, handle, base / f"{out.name}.log", out) for (process, handle), out in runs]
    print(f"rendered the platform twice in {time.monotonic() - started:.0f}s")
    return trees


@pytest.fixture(scope="session")
def render_tree(request) -> Path:
    """The first render; MLOPS_RENDER_TREE=<folder> reuses a tree rendered before (while
    developing a test: the suite then renders nothing for the tests that need one tree)."""
    if os.environ.get("MLOPS_RENDER_TREE"):
        return Path(os.environ["MLOPS_RENDER_TREE"])
    return request.getfixturevalue("renders")[0]


@pytest.fixture(scope="session")
def rendered(render_tree):
    """(relative file, object) of every rendered object."""
    items = manifest_validation.load_tree(str(render_tree))
    assert items, f"the render under {render_tree} holds no object"
    return items


def load_yaml(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="session")
def versions():
    return load_yaml(DEFAULTS / "versions.yml")


@pytest.fixture(scope="session")
def platform_defaults():
    return load_yaml(DEFAULTS / "platform.yml")


@pytest.fixture(scope="session")
def validator_factory(upstream, versions):
    """New strict validators built like playbooks/validate.yml builds them."""

    def make():
        return manifest_validation.validator_from_versions(versions, str(upstream))

    return make


@pytest.fixture(scope="session")
def validator(validator_factory):
    return validator_factory()
