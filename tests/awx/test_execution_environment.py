"""execution-environment.yml gives a build context with the collection built from this
checkout and every dependency of its plugins, offline.

`ansible-builder create` (ansible-builder ``ansible_builder/main.py``, ``AnsibleBuilder.
create``) writes the Containerfile and the ``_build`` folder without pulling anything;
building the image needs its base image and is documented (README "AWX"), not tested.
"""
import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from awx_helpers import REPO

pytestmark = pytest.mark.slow

# import name -> distribution name, where they differ
# (referencing comes with jsonschema, urllib3 with kubernetes: both pinned by those).
DISTRIBUTIONS = {"yaml": "pyyaml", "kubernetes_validate": "kubernetes-validate", "referencing": "jsonschema",
                 "urllib3": "kubernetes"}


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ee")
    for name in ("execution-environment.yml", "requirements.txt", "requirements.yml"):
        shutil.copy(REPO / name, tmp / name)
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "ansible-galaxy"), "collection", "build", "--output-path",
                    str(tmp / "build" / "collection"), str(REPO)], check=True, capture_output=True)
    proc = subprocess.run([str(bin_dir / "ansible-builder"), "create", "-f", "execution-environment.yml",
                           "--context", str(tmp / "context"), "--output-filename", "Containerfile"],
                          cwd=tmp, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return tmp / "context"


def test_context_has_the_collection_from_this_checkout(context):
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    tarball = context / "_build" / "collections" / f"researchops-mlops-{version}.tar.gz"
    assert tarball.is_file()
    containerfile = (context / "Containerfile").read_text()
    assert f"researchops-mlops-{version}.tar.gz" in containerfile
    assert "ansible-galaxy collection install --offline" in containerfile


def test_ee_pins_ansible_core_and_runner_to_the_controller_pins(context):
    ee = yaml.safe_load((REPO / "execution-environment.yml").read_text())
    pins = dict(line.split("==") for line in (REPO / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert ee["dependencies"]["ansible_core"]["package_pip"] == f"ansible-core=={pins['ansible-core']}"
    assert (context / "_build" / "requirements.txt").read_text() == (REPO / "requirements.txt").read_text()
    assert (context / "_build" / "requirements.yml").is_file()


def test_every_third_party_import_of_the_plugins_is_in_the_ee():
    requirements = {line.split("==")[0].lower() for line in (REPO / "requirements.txt").read_text().splitlines()
                    if "==" in line}
    stdlib = set(sys.stdlib_module_names) | {"ansible", "ansible_collections", "__future__"}
    for path in (REPO / "plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in stdlib or (path.parent / f"{top}.py").is_file():
                    continue  # standard library, or a sibling shipped with a Job script (incluster_client)
                assert DISTRIBUTIONS.get(top, top).lower() in requirements, f"{path.name} imports {top}"
