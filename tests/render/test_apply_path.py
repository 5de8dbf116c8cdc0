"""The apply path passes exactly the rendered objects to the apply module: the same
component roles run once with mlops_k8s_sink=render and once with mlops_k8s_sink=apply,
where researchops.mlops.k8s_apply is replaced by a recording test double (a copy of the
collection made of links, with that one module swapped). Vault-provided Secrets reach
the module only in a no_log task and never the render."""
from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from ansible_collections.researchops.mlops.plugins.module_utils import manifest_validation
from ansible_collections.researchops.mlops.plugins.module_utils.k8s_objects import object_id

pytestmark = pytest.mark.slow

FILES = Path(__file__).parent / "files"
VAULT_VALUE = "vault-value-that-must-never-be-printed-7c1e"
SKIP = {".git", ".venv", "collections", "build", ".cache", ".pytest_cache", "tests"}


def link_collection(repo_root, dest):
    """ansible_collections/researchops/mlops under dest: links to the checkout, except
    plugins/modules/k8s_apply.py, which is the recorder, and the k8s_apply action plugin
    (it would run the real apply in place of the recorder)."""
    root = dest / "ansible_collections" / "researchops" / "mlops"
    modules = root / "plugins" / "modules"
    modules.mkdir(parents=True)
    (root / "plugins" / "action").mkdir()
    for entry in repo_root.iterdir():
        if entry.name not in SKIP and entry.name != "plugins":
            (root / entry.name).symlink_to(entry)
    for entry in (repo_root / "plugins").iterdir():
        if entry.name not in ("modules", "action"):
            (root / "plugins" / entry.name).symlink_to(entry)
    for entry in (repo_root / "plugins" / "action").glob("*.py"):
        if entry.name != "k8s_apply.py":
            (root / "plugins" / "action" / entry.name).symlink_to(entry)
    for entry in (repo_root / "plugins" / "modules").glob("*.py"):
        if entry.name != "k8s_apply.py":
            (modules / entry.name).symlink_to(entry)
    (modules / "k8s_apply.py").symlink_to(FILES / "k8s_apply_recorder.py")
    return dest


def link_kubernetes_core(dest):
    """ansible_collections/kubernetes/core under dest: the installed collection with its
    k8s and k8s_info modules replaced by the recorder."""
    import ansible_collections.kubernetes.core as real

    source = Path(real.__file__).parent if getattr(real, "__file__", None) else Path(list(real.__path__)[0])
    root = dest / "ansible_collections" / "kubernetes" / "core"
    modules = root / "plugins" / "modules"
    modules.mkdir(parents=True)
    for entry in source.iterdir():
        if entry.name != "plugins":
            (root / entry.name).symlink_to(entry)
    for entry in (source / "plugins").iterdir():
        if entry.name != "modules":
            (root / "plugins" / entry.name).symlink_to(entry)
    for entry in (source / "plugins" / "modules").glob("*.py"):
        target = FILES / "kubernetes_core_k8s_recorder.py" if entry.name in ("k8s.py", "k8s_info.py") else entry
        (modules / entry.name).symlink_to(target)
    return dest


def run(repo_root, env, extra, record=None, collections=None):
    env = dict(env)
    if record:
        env["MLOPS_APPLY_RECORD"] = str(record)
    if collections:
        env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    cmd = [str(Path(env["PATH"].split(os.pathsep)[0]) / "ansible-playbook"), str(FILES / "apply_path.yml"), "-i", "inventories/local", "-v"]
    for key, value in extra.items():
        cmd += ["-e", f"{key}={value}"]
    result = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    return result.stdout + result.stderr


def canonical(obj):
    return json.dumps(obj, sort_keys=True)


@pytest.fixture(scope="module")
def both_paths(tmp_path_factory, repo_root, ansible_env):
    base = tmp_path_factory.mktemp("apply_path")
    common = {"harbor_admin_password": VAULT_VALUE}
    rendered_log = run(repo_root, ansible_env, dict(common, mlops_k8s_sink="render", mlops_render_dir=base / "render"))
    record = base / "record.jsonl"
    record.touch()
    applied_log = run(
        repo_root,
        ansible_env,
        dict(common, mlops_k8s_sink="apply", mlops_kubeconfig=base / "no-cluster.yaml", k8s_sink_apply_engine="researchops"),
        record=record,
        collections=link_collection(repo_root, base / "collections"),
    )
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    tree = [obj for _, obj in manifest_validation.load_tree(str(base / "render"))]
    return calls, tree, rendered_log + applied_log


def test_apply_module_gets_exactly_the_rendered_objects(both_paths):
    calls, tree, _ = both_paths
    object_calls = [call for call in calls if not any(obj["kind"] == "Secret" and obj not in tree for obj in call["objects"])]
    sent = Counter(canonical(obj) for call in object_calls for obj in call["objects"])
    written = Counter(canonical(obj) for obj in tree)
    assert tree, "the render wrote nothing"
    only_sent = [object_id(json.loads(o)) for o in sent - written]
    only_written = [object_id(json.loads(o)) for o in written - sent]
    assert only_sent == [] and only_written == []


def test_vault_secrets_go_to_the_module_but_never_to_the_render_or_the_log(both_paths):
    calls, tree, log = both_paths
    secret_calls = [call for call in calls if any(obj["kind"] == "Secret" and obj not in tree for obj in call["objects"])]
    assert len(secret_calls) == 1
    secrets = [obj for obj in secret_calls[0]["objects"] if obj["kind"] == "Secret"]
    assert VAULT_VALUE in json.dumps(secrets)
    assert all(obj["kind"] in ("Secret", "Namespace") for obj in secret_calls[0]["objects"])
    assert VAULT_VALUE not in json.dumps(tree)
    assert VAULT_VALUE not in log


def test_the_apply_engine_gets_the_sink_options(both_paths):
    calls, _, _ = both_paths
    assert calls and {call["field_manager"] for call in calls} == {"researchops"}


@pytest.fixture(scope="module")
def kubernetes_core_path(tmp_path_factory, repo_root, ansible_env, both_paths):
    base = tmp_path_factory.mktemp("kubernetes_core_path")
    record = base / "record.jsonl"
    record.touch()
    # kubernetes.core's action plugin checks that the kubeconfig exists; nothing reads it
    (base / "no-cluster.yaml").write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    collections = link_kubernetes_core(link_collection(repo_root, base / "collections"))
    log = run(
        repo_root,
        ansible_env,
        {"harbor_admin_password": VAULT_VALUE, "mlops_k8s_sink": "apply", "mlops_kubeconfig": base / "no-cluster.yaml",
         "k8s_sink_apply_engine": "kubernetes_core"},
        record=record,
        collections=collections,
    )
    return [json.loads(line) for line in record.read_text().splitlines()], both_paths[1], log


def test_kubernetes_core_engine_gets_the_same_objects_in_waves(kubernetes_core_path):
    calls, tree, log = kubernetes_core_path
    applies = [call for call in calls if "definition" in call]
    assert applies and all(call["apply"] is True and call["server_side_apply"]["field_manager"] == "researchops" for call in applies)
    secret_calls = [call for call in applies if any(obj["kind"] == "Secret" and obj not in tree for obj in call["definition"])]
    assert len(secret_calls) == 1
    object_calls = [call for call in applies if call not in secret_calls]
    sent = Counter(canonical(obj) for call in object_calls for obj in call["definition"])
    assert sent == Counter(canonical(obj) for obj in tree)
    for call in object_calls:
        kinds = {obj["kind"] for obj in call["definition"]}
        if "CustomResourceDefinition" in kinds:
            assert kinds == {"CustomResourceDefinition"} and call["wait_condition"] == {"type": "Established", "status": "True"}
        elif "Namespace" in kinds:
            assert kinds == {"Namespace"}
    assert VAULT_VALUE not in log
