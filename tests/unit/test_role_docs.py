"""Role README variable tables are generated from meta/argument_specs.yml
(scripts/role_docs.py) and cannot drift from it."""
from __future__ import annotations

import importlib.util
import shutil

import pytest


@pytest.fixture(scope="module")
def role_docs(repo_root):
    spec = importlib.util.spec_from_file_location("role_docs", repo_root / "scripts" / "role_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_readme_table_matches_its_spec(role_docs, repo_root):
    stale = [role.name for role in role_docs.roles(repo_root) if len(set(role_docs.expected_readme(role))) > 1]
    assert not stale, f"README tables out of date, run `.venv/bin/python scripts/role_docs.py --write`: {stale}"


def test_a_changed_spec_makes_the_readme_stale(role_docs, repo_root, tmp_path):
    role = tmp_path / "roles" / "postgresql"
    shutil.copytree(repo_root / "roles" / "postgresql", role)
    current, wanted = role_docs.expected_readme(role)
    assert current == wanted
    spec = role / "meta" / "argument_specs.yml"
    spec.write_text(spec.read_text().replace("Size of the data volume.", "Size of the data volume, C(8Gi) by default."))
    current, wanted = role_docs.expected_readme(role)
    assert current != wanted
    assert "| `postgresql_storage_size` | str | `8Gi` | Size of the data volume, `8Gi` by default. |" in wanted


def test_table_rows(role_docs):
    block = role_docs.table({"main": {"options": {
        "x_list": {"type": "list", "elements": "dict", "required": True, "description": ["One.", "Two | three."],
                   "options": {"name": {"type": "str", "default": ""}}},
        "x_mode": {"type": "str", "choices": ["a", "b"], "default": "a", "description": "B(Mode)."},
    }}})
    assert block.splitlines()[4:7] == [
        "| `x_list` | list of dict | (required) | One. Two \\| three. |",
        '| `x_list[].name` | str | `""` |  |',
        "| `x_mode` | str (a, b) | `a` | **Mode**. |",
    ]


def test_no_description_holds_a_template(repo_root):
    """ansible-core templates a role's whole argument_spec before validating it
    (lib/ansible/plugins/action/validate_argument_spec.py, ActionModule.run: the
    `argument_spec` task argument is finalised like any other), so `{{ x }}` in a
    description is evaluated and fails every include of the role when `x` is undefined
    (it did: k3s_token's description named `{{ vault_k3s_token }}`)."""
    import yaml

    def descriptions(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("description", "short_description"):
                    yield from ([value] if isinstance(value, str) else value or [])
                else:
                    yield from descriptions(value)
        elif isinstance(node, list):
            for item in node:
                yield from descriptions(item)

    bad = [f"{spec.relative_to(repo_root)}: {text[:80]}"
           for spec in sorted(repo_root.glob("roles/*/meta/argument_specs.yml"))
           for text in descriptions(yaml.safe_load(spec.read_text()))
           if "{{" in str(text) or "{%" in str(text)]
    assert not bad, bad
