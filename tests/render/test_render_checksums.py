"""The render of `make run` (site.yml, inventories/local) is byte-identical to the
committed checksum list tests/render/render.sha256. A refactor that must not change any
object passes this test unchanged; an intended change updates the list on purpose with
`.venv/bin/python scripts/render_checksums.py --write` (see CONTRIBUTING.md)."""
from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.slow


def _script(repo_root):
    spec = importlib.util.spec_from_file_location("render_checksums", repo_root / "scripts" / "render_checksums.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_render_matches_the_committed_checksums(render_tree, repo_root):
    script = _script(repo_root)
    expected = script.loads(script.CHECKSUM_FILE.read_text(encoding="utf-8"))
    diff = script.differences(expected, script.checksums(render_tree))
    assert not diff, (
        "the render differs from tests/render/render.sha256; if the change is intended, run "
        "`.venv/bin/python scripts/render_checksums.py --write` and commit the list:\n" + "\n".join(diff[:50])
    )


def test_checksum_comparison_names_each_difference(repo_root):
    script = _script(repo_root)
    expected = {"a.yaml": "1", "b.yaml": "2", "c.yaml": "3"}
    actual = {"a.yaml": "1", "b.yaml": "changed", "d.yaml": "4"}
    assert script.differences(expected, actual) == [
        "missing from the render: c.yaml",
        "new in the render: d.yaml",
        "changed: b.yaml",
    ]
    assert script.loads(script.dumps(expected)) == expected
