"""galaxy_info.platforms of the node roles name every OS they support, in the names
Galaxy accepts.

The accepted names are those of ansible-lint's meta schema
(ansiblelint/schemas/meta.json, `$defs/*PlatformModel`, the list the `schema[meta]`
rule checks and Galaxy's role import uses). It has no openEuler and no Raspberry Pi OS:
Raspberry Pi OS reports distribution Debian (bookworm) and is the Debian entry; openEuler
can only be `GenericLinux` (versions [all]). The node roles support openEuler
(vars/openEuler.yml or the RedHat family vars), so their meta must say GenericLinux.

It lives outside tests/unit: it reads ansible-lint's schema, and `ansible-test units`
(galaxy layer) runs tests/unit in a venv without ansible-lint.
"""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"
# The roles playbooks/nodes.yml and playbooks/k3s.yml run on the machines themselves.
NODE_ROLES = ["prereqs", "nfs_client", "nfs_server", "docker", "nvidia_runtime", "k3s", "k3s_server", "k3s_agent"]


@pytest.fixture(scope="module")
def meta_schema():
    return json.loads(resources.files("ansiblelint").joinpath("schemas/meta.json").read_text(encoding="utf-8"))


def galaxy_info(role):
    return yaml.safe_load((ROLES / role / "meta" / "main.yml").read_text())


@pytest.mark.parametrize("role", sorted(p.name for p in ROLES.iterdir() if (p / "meta" / "main.yml").is_file()))
def test_meta_validates_against_ansible_lint_schema(meta_schema, role):
    jsonschema.validate(galaxy_info(role), meta_schema)


@pytest.mark.parametrize("role", NODE_ROLES)
def test_node_roles_name_openeuler_and_raspberry_pi_os(role):
    info = galaxy_info(role)["galaxy_info"]
    platforms = {entry["name"]: entry.get("versions", ["all"]) for entry in info["platforms"]}
    # openEuler: the only accepted name for it
    assert platforms.get("GenericLinux") == ["all"], platforms
    # Raspberry Pi OS 12 reports Debian bookworm
    assert "bookworm" in platforms.get("Debian", []), platforms
    assert {"openeuler", "raspberrypi"} <= set(info.get("galaxy_tags", [])), info.get("galaxy_tags")


def test_openeuler_is_not_a_galaxy_platform_name(meta_schema):
    """The reason GenericLinux is used: a platform named openEuler is refused."""
    bad = {"galaxy_info": {**galaxy_info("prereqs")["galaxy_info"], "platforms": [{"name": "openEuler", "versions": ["all"]}]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, meta_schema)
