"""The `cluster` layer: one real control plane (etcd + kube-apiserver [+ controller
manager], see controlplane.py) for the whole test run, started on free ports, stopped and
wiped at the end. Without binaries every test of the layer is skipped, loudly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from .controlplane import NoBinaries, find_binaries, start_control_plane

REPO_ROOT = Path(__file__).resolve().parents[2]
# Tests here ask the API server what other layers check on paper, with those layers'
# helpers: the render and the security checks (tests/render), the pipeline filter tests'
# inputs (tests/unit/plugins/filter).
for _folder in (REPO_ROOT / "tests" / "render", REPO_ROOT / "tests" / "unit" / "plugins" / "filter"):
    if str(_folder) not in sys.path:
        sys.path.append(str(_folder))

# test_site_apply.py's first run expects an API server none of the platform was applied
# to; these modules apply rendered objects with kubectl, so they run after it.
AFTER_SITE = ("test_security_apiserver.py", "test_pipeline_rbac.py", "test_platform_rbac.py")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.path.parent == Path(__file__).parent and item.path.name in AFTER_SITE)


def skip_loudly(error):
    message = f"CLUSTER LAYER SKIPPED: {error}"
    print(f"\n{'!' * 78}\n{message}\n{'!' * 78}", file=sys.stderr)
    pytest.skip(message)


@pytest.fixture(scope="session")
def kube_binaries():
    """The folder of etcd, kube-apiserver, kubectl (+ kube-controller-manager): the harness
    is unpacked once per run, for every control plane the layer starts."""
    unpacked = tempfile.mkdtemp(prefix="mlops-kube-harness-")
    try:
        binaries = find_binaries(unpacked)
    except NoBinaries as e:
        shutil.rmtree(unpacked, ignore_errors=True)
        skip_loudly(e)
    try:
        yield binaries
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)


@pytest.fixture(scope="session")
def control_plane(kube_binaries):
    try:
        plane, workdir = start_control_plane(kube_binaries)
    except NoBinaries as e:
        skip_loudly(e)
    try:
        yield plane
    finally:
        plane.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def kubectl(control_plane):
    return control_plane.kubectl


def get_json(kubectl, *args):
    return json.loads(kubectl("get", "-o", "json", *args).stdout)


@pytest.fixture(scope="session")
def playbook(control_plane, ansible_env, tmp_path_factory):
    """run(tasks, check=False, diff=False, extra=()) -> CompletedProcess of ansible-playbook
    running `tasks` on localhost with the control plane's kubeconfig in `kubeconfig`."""
    folder = tmp_path_factory.mktemp("plays")
    env = dict(ansible_env, ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_CALLBACK_RESULT_FORMAT="json")

    def run(tasks, *args, timeout=600):
        play = [{"name": "cluster test", "hosts": "localhost", "connection": "local", "gather_facts": False,
                 "vars": {"kubeconfig": str(control_plane.kubeconfig), "ansible_python_interpreter": sys.executable},
                 "tasks": tasks}]
        handle, path = tempfile.mkstemp(suffix=".yml", dir=folder)
        with os.fdopen(handle, "w") as out:
            yaml.safe_dump(play, out)
        return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", path, *args],
                              cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)

    return run


@pytest.fixture(scope="session", autouse=True)
def render_started(request, ansible_env, tmp_path_factory):
    """The render `rendered` reads, started with the layer's first test when a selected
    test needs it: it runs while the first tests wait on the API server. None when no
    test needs it or MLOPS_RENDER_TREE names a tree rendered before."""
    if os.environ.get("MLOPS_RENDER_TREE") or not any("rendered" in item.fixturenames for item in request.session.items):
        yield None
        return
    from render_helpers import start_render

    base = tmp_path_factory.mktemp("render")
    out, log = base / "tree", base / "render.log"
    process, handle = start_render(REPO_ROOT, ansible_env, out, log)
    try:
        yield process, handle, log, out
    finally:
        if process.poll() is None:  # the session ended before a test needed it
            process.kill()
            process.wait()
        handle.close()


@pytest.fixture(scope="session")
def rendered(render_started):
    """(relative file, object) of every object of one render of the embedded local
    inventory (render_started); MLOPS_RENDER_TREE=<folder> reuses a tree rendered before."""
    from render_helpers import finish_render

    from ansible_collections.researchops.mlops.plugins.module_utils import manifest_validation

    tree = os.environ["MLOPS_RENDER_TREE"] if render_started is None else finish_render(*render_started)
    items = manifest_validation.load_tree(str(tree))
    assert items, f"the render under {tree} holds no object"
    return items


SCRATCH = "psa-restricted-probe"
PSA = "pod-security.kubernetes.io/"
RBAC_KINDS = ("ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")


def namespace_doc(name, labels):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


@pytest.fixture(scope="session")
def namespaces(kubectl, rendered):
    """The rendered Namespaces (with their labels), a scratch one enforcing restricted,
    and a default ServiceAccount in each (made here: the layer's controller manager may
    not have made them yet)."""
    docs = [obj for _source, obj in rendered if obj["kind"] == "Namespace"]
    docs.append(namespace_doc(SCRATCH, {PSA + "enforce": "restricted", PSA + "enforce-version": "v1.34"}))
    names = [d["metadata"]["name"] for d in docs] + ["kube-system"]
    accounts = [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": n}}
                for n in names if n != "kube-system"]
    kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(docs + accounts))
    return names


@pytest.fixture(scope="session")
def rendered_rbac(kubectl, namespaces, rendered):
    """The rendered ServiceAccounts, Roles, ClusterRoles and bindings, applied (with
    --force-conflicts: what is checked is the render, whoever applied these before)."""
    objects = [obj for _source, obj in rendered if obj["kind"] in RBAC_KINDS]
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump_all(objects))
    return objects
