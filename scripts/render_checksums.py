"""Checksums of every file `make run` renders (site.yml, inventories/local).

The committed list, tests/render/render.sha256, pins the render byte for byte: a
refactor that must not change any object is proven by the render test
(tests/render/test_render_checksums.py) passing unchanged. When a change to the
rendered objects is intended, update the list on purpose and commit it with the change:

    .venv/bin/python scripts/render_checksums.py --write

which renders into a temporary folder and rewrites the list. `--check` renders and
compares without writing; `--tree DIR` uses an existing render instead (e.g. build/manifests
after `make run`). The format is sha256sum's, so `cd DIR && sha256sum -c LIST` works too.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKSUM_FILE = REPO_ROOT / "tests" / "render" / "render.sha256"


def checksums(tree: Path) -> dict[str, str]:
    """{relative posix path: sha256 hex} of every file under tree."""
    return {
        path.relative_to(tree).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(tree.rglob("*"))
        if path.is_file()
    }


def dumps(sums: dict[str, str]) -> str:
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items()))


def loads(text: str) -> dict[str, str]:
    sums = {}
    for line in text.splitlines():
        digest, _sep, name = line.partition("  ")
        sums[name] = digest
    return sums


def differences(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    """One line per file that was added, removed or changed; empty when equal."""
    lines = [f"missing from the render: {name}" for name in sorted(expected.keys() - actual.keys())]
    lines += [f"new in the render: {name}" for name in sorted(actual.keys() - expected.keys())]
    lines += [f"changed: {name}" for name in sorted(expected.keys() & actual.keys()) if expected[name] != actual[name]]
    return lines


def render(out: Path) -> None:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"))
    env.setdefault("MLOPS_UPSTREAM_DIR", str((REPO_ROOT.parent / "shared" / "upstream").resolve()))
    playbook = Path(sys.executable).parent / "ansible-playbook"
    cmd = [str(playbook), "site.yml", "-i", "inventories/local", "-e", f"mlops_render_dir={out}"]
    result = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"render failed (rc={result.returncode}):\n{result.stdout[-4000:]}{result.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help=f"rewrite {CHECKSUM_FILE.relative_to(REPO_ROOT)}")
    mode.add_argument("--check", action="store_true", help="compare the render with the list")
    parser.add_argument("--tree", type=Path, help="an existing render folder (default: render now)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="render-checksums-") as tmp:
        tree = args.tree
        if tree is None:
            tree = Path(tmp) / "manifests"
            render(tree)
        sums = checksums(tree)
    if args.write:
        CHECKSUM_FILE.write_text(dumps(sums), encoding="utf-8")
        print(f"wrote {len(sums)} checksums to {CHECKSUM_FILE.relative_to(REPO_ROOT)}")
        return 0
    diff = differences(loads(CHECKSUM_FILE.read_text(encoding="utf-8")), sums)
    print("\n".join(diff) if diff else f"render matches all {len(sums)} checksums")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
