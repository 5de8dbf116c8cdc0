"""Render the whole platform from the embedded local inventory, once per session (two
renders run side by side: the second one only feeds the determinism test), and give the
tests the tree, its objects and a strict validator built from the pinned upstream files."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from ansible_collections.researchops.mlops.plugins.module_utils import manifest_validation

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = REPO_ROOT / "roles" / "mlops" / "defaults" / "main"
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
