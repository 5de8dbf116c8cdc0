"""Unit tests of the render sink (module_utils.k8s_render behind modules.k8s_render)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from unittest import mock

import pytest
import yaml

from ansible_collections.researchops.mlops.plugins.module_utils.k8s_objects import ObjectError
from ansible_collections.researchops.mlops.plugins.module_utils.k8s_render import render
from ansible_collections.researchops.mlops.plugins.modules import k8s_render as module

OBJECTS = [
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "demo"}, "spec": {"replicas": 1}},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "script", "namespace": "demo"}, "data": {"run.sh": "#!/bin/sh\necho hi\n"}},
]


def tree(root):
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_file_names_and_kustomizations(tmp_path):
    result = render(str(tmp_path), "platform", "demo", OBJECTS)
    assert result["changed"] is True
    assert sorted(tree(tmp_path)) == [
        "kustomization.yaml",
        "platform/demo/configmap-demo-script.yaml",
        "platform/demo/deployment-demo-web.yaml",
        "platform/demo/kustomization.yaml",
        "platform/demo/namespace-demo.yaml",
        "platform/kustomization.yaml",
    ]
    component = yaml.safe_load((tmp_path / "platform/demo/kustomization.yaml").read_text())
    assert component["resources"] == ["configmap-demo-script.yaml", "deployment-demo-web.yaml", "namespace-demo.yaml"]
    assert yaml.safe_load((tmp_path / "platform/demo/configmap-demo-script.yaml").read_text()) == OBJECTS[2]


def test_second_run_is_byte_identical_and_unchanged(tmp_path):
    render(str(tmp_path), "platform", "demo", OBJECTS)
    before = tree(tmp_path)
    result = render(str(tmp_path), "platform", "demo", list(reversed(OBJECTS)))
    assert result["changed"] is False and result["written"] == [] and result["removed"] == []
    assert tree(tmp_path) == before


def test_stale_files_of_the_component_are_removed(tmp_path):
    render(str(tmp_path), "platform", "demo", OBJECTS)
    (tmp_path / "platform/demo/notes.txt").write_text("kept: not YAML")
    result = render(str(tmp_path), "platform", "demo", OBJECTS[:2])
    assert result["removed"] == ["platform/demo/configmap-demo-script.yaml"]
    assert (tmp_path / "platform/demo/notes.txt").exists()
    assert "configmap-demo-script.yaml" not in (tmp_path / "platform/demo/kustomization.yaml").read_text()


def test_check_mode_writes_nothing_and_diffs(tmp_path):
    render(str(tmp_path), "platform", "demo", OBJECTS)
    changed = [dict(OBJECTS[0], spec={"replicas": 2})] + OBJECTS[1:]
    before = tree(tmp_path)
    result = render(str(tmp_path), "platform", "demo", changed, check_mode=True)
    assert result["changed"] is True and result["written"] == ["platform/demo/deployment-demo-web.yaml"]
    assert tree(tmp_path) == before
    assert "replicas: 1" in result["diff"][0]["before"] and "replicas: 2" in result["diff"][0]["after"]


def test_phases_in_site_order_and_components_sorted(tmp_path):
    render(str(tmp_path), "pipelines", "mnist", [OBJECTS[2]])
    render(str(tmp_path), "platform", "zeta", [OBJECTS[1]])
    render(str(tmp_path), "platform", "alpha", [OBJECTS[0]])
    render(str(tmp_path), "cluster", "gpu", [])
    assert yaml.safe_load((tmp_path / "kustomization.yaml").read_text())["resources"] == ["cluster", "platform", "pipelines"]
    assert yaml.safe_load((tmp_path / "platform/kustomization.yaml").read_text())["resources"] == ["alpha", "zeta"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kubectl_kustomize_builds_tree_and_components(tmp_path):
    render(str(tmp_path), "platform", "demo", OBJECTS)
    render(str(tmp_path), "cluster", "empty", [])
    for folder in (tmp_path, tmp_path / "platform/demo", tmp_path / "cluster/empty"):
        result = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
    built = list(yaml.safe_load_all(subprocess.run(["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, check=True).stdout))
    assert len(built) == 3


@pytest.mark.parametrize("phase, component, objects, message", [
    ("Platform", "demo", [], "phase 'Platform' must be a folder name"),
    ("platform", "../x", [], "component '../x' must be a folder name"),
    ("platform", "demo", [OBJECTS[0], OBJECTS[0]], r"Deployment demo/web \(apps/v1\) is emitted twice"),
    ("platform", "demo", [{"kind": "ConfigMap"}], r"platform/demo object 0: missing apiVersion, metadata.name"),
])
def test_errors(tmp_path, phase, component, objects, message):
    with pytest.raises(ObjectError, match=message):
        render(str(tmp_path), phase, component, objects)


def run_module(args, check_mode=False, diff=False):
    """Run modules.k8s_render.main() with args; return its JSON result."""
    from ansible.module_utils import basic
    from ansible.module_utils.common.text.converters import to_bytes

    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    with mock.patch.object(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args}))), \
            mock.patch.object(basic, "_ANSIBLE_PROFILE", "legacy", create=True):
        with pytest.raises(SystemExit), mock.patch("builtins.print") as printed:
            module.main()
    return json.loads(printed.call_args[0][0])


def test_module_reports_files_and_diff_only_when_asked(tmp_path):
    args = {"dest": str(tmp_path), "phase": "platform", "component": "demo", "objects": OBJECTS}
    first = run_module(args, diff=True)
    assert first["changed"] is True and len(first["diff"]) == 6 and first["objects"] == 3
    second = run_module(args)
    assert second["changed"] is False and "diff" not in second


def test_module_fails_with_the_component_in_the_message(tmp_path):
    result = run_module({"dest": str(tmp_path), "phase": "platform", "component": "demo", "objects": [OBJECTS[0], OBJECTS[0]]})
    assert result["failed"] is True
    assert result["msg"].startswith("render of platform/demo failed: Deployment demo/web (apps/v1) is emitted twice")


def _ansible_playbook(env):
    """A runnable ansible-playbook: the one beside this interpreter (the project venv), else
    the first on the PATH of env. None under ansible-test units, whose module test context
    has no ansible.cli (only ansible.module_utils) for the interpreter beside it."""
    for directory in (os.path.dirname(sys.executable), env.get("PATH")):
        found = shutil.which("ansible-playbook", path=directory)
        if found and subprocess.run([found, "--version"], env=env, capture_output=True, timeout=120, check=False).returncode == 0:
            return found
    return None


def test_sink_role_render_through_the_action_plugin_check_mode_and_idempotence(tmp_path, repo_root, ansible_env):
    """The k8s_sink role in render mode: check mode writes nothing, the first run
    writes, the second reports no change; vault Secrets are not written."""
    ansible_playbook = _ansible_playbook(ansible_env)
    if ansible_playbook is None:
        pytest.skip("no runnable ansible-playbook (ansible-test units: the module test context has no ansible.cli)")
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "tasks": [{
            "name": "Sink",
            "ansible.builtin.include_role": {"name": "researchops.mlops.k8s_sink"},
            "vars": {
                "k8s_sink_phase": "platform",
                "k8s_sink_component": "demo",
                "k8s_sink_objects": OBJECTS,
                "k8s_sink_secrets": [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "demo"}, "stringData": {"k": "v"}}],
            },
        }],
    }]))
    out = tmp_path / "out"

    def play(*extra):
        cmd = [ansible_playbook, str(playbook),
               "-e", "mlops_k8s_sink=render", "-e", f"mlops_render_dir={out}", *extra]
        result = subprocess.run(cmd, cwd=repo_root, env=ansible_env, capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, result.stdout[-3000:]
        return result.stdout

    assert "changed=1" in play("--check", "--diff")
    assert not out.exists()
    assert "changed=1" in play()
    assert sorted(p.name for p in (out / "platform/demo").iterdir()) == [
        "configmap-demo-script.yaml", "deployment-demo-web.yaml", "kustomization.yaml", "namespace-demo.yaml"]
    assert "changed=0" in play("--check", "--diff")
    assert "changed=0" in play()


def test_module_alone_refuses_crds_from(tmp_path):
    """crds_from is read by the action plugin on the controller; the module run on its own
    must say so rather than render without the CRDs."""
    result = run_module({"dest": str(tmp_path), "phase": "platform", "component": "demo", "objects": OBJECTS,
                         "crds_from": [{"path": "x/install.yaml", "url": "https://example.org/x", "sha256": "0" * 64}]})
    assert result["failed"] is True
    assert "crds_from is read by the action plugin" in result["msg"]
    assert not (tmp_path / "platform").exists()


UPSTREAM_MANIFEST = """---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.org}
spec:
  group: example.org
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: not-a-crd, namespace: demo}
"""


def test_sink_role_render_takes_the_crds_by_reference(tmp_path, repo_root, ansible_env):
    """k8s_sink_crds_from reaches k8s_render as crds_from: the CRDs (and only they) of the
    pinned manifest are rendered with k8s_sink_objects, byte-identical to giving them in
    k8s_sink_objects; a wrong sha256 fails the task naming crds_from. The manifest is read
    through the upstream_manifest lookup (mlops_upstream_dir), as k8s_apply reads it."""
    import hashlib

    ansible_playbook = _ansible_playbook(ansible_env)
    if ansible_playbook is None:
        pytest.skip("no runnable ansible-playbook (ansible-test units: the module test context has no ansible.cli)")
    upstream = tmp_path / "upstream"
    (upstream / "example/v1").mkdir(parents=True)
    (upstream / "example/v1/install.yaml").write_text(UPSTREAM_MANIFEST)
    entry = {"path": "example/v1/install.yaml", "url": "https://example.org/install.yaml",
             "sha256": hashlib.sha256(UPSTREAM_MANIFEST.encode()).hexdigest()}
    crd = yaml.safe_load_all(UPSTREAM_MANIFEST).__next__()

    def play(out, sink_vars):
        playbook = tmp_path / "play.yml"
        playbook.write_text(yaml.safe_dump([{
            "hosts": "localhost", "connection": "local", "gather_facts": False,
            "tasks": [{"name": "Sink", "ansible.builtin.include_role": {"name": "researchops.mlops.k8s_sink"},
                       "vars": dict({"k8s_sink_phase": "platform", "k8s_sink_component": "demo"}, **sink_vars)}],
        }]))
        cmd = [ansible_playbook, str(playbook), "-e", "mlops_k8s_sink=render", "-e", f"mlops_render_dir={out}",
               "-e", f"mlops_upstream_dir={upstream}", "-e", f"mlops_download_cache={tmp_path / 'cache'}"]
        return subprocess.run(cmd, cwd=repo_root, env=ansible_env, capture_output=True, text=True, timeout=300, check=False)

    by_reference = play(tmp_path / "ref", {"k8s_sink_objects": OBJECTS, "k8s_sink_crds_from": [entry]})
    assert by_reference.returncode == 0, by_reference.stdout[-3000:]
    inline = play(tmp_path / "inline", {"k8s_sink_objects": [crd, *OBJECTS]})
    assert inline.returncode == 0, inline.stdout[-3000:]
    assert tree(tmp_path / "ref") == tree(tmp_path / "inline")
    assert "platform/demo/customresourcedefinition-widgets.example.org.yaml" in tree(tmp_path / "ref")
    assert not any("not-a-crd" in name for name in tree(tmp_path / "ref"))

    wrong = play(tmp_path / "wrong", {"k8s_sink_objects": OBJECTS, "k8s_sink_crds_from": [dict(entry, sha256="0" * 64)]})
    assert wrong.returncode != 0
    assert "k8s_render: crds_from:" in wrong.stdout and "sha256" in wrong.stdout.lower()
    assert not (tmp_path / "wrong").exists()


def object_dumps(dump):
    """The objects a mocked to_yaml serialised, kustomization.yaml files aside."""
    return [call.args[0] for call in dump.call_args_list if call.args[0].get("kind") != "Kustomization"]


def test_yaml_cache_verifies_unchanged_files_without_serialising(tmp_path):
    """With cache_dir, a re-run serialises no object (the sha256 of each file's text is
    compared with the one remembered for the object's canonical JSON) and gives the same
    result and files as a run without the cache."""
    from ansible_collections.researchops.mlops.plugins.module_utils import k8s_render

    dest, cache = tmp_path / "out", str(tmp_path / "cache")
    first = render(str(dest), "platform", "demo", OBJECTS, cache_dir=cache)
    before = tree(dest)
    with mock.patch.object(k8s_render, "to_yaml", wraps=k8s_render.to_yaml) as dump:
        again = render(str(dest), "platform", "demo", OBJECTS, cache_dir=cache)
    assert object_dumps(dump) == []
    assert again["changed"] is False and sorted(again["unchanged"]) == sorted(first["written"])
    assert tree(dest) == before
    uncached = tmp_path / "plain"
    render(str(uncached), "platform", "demo", OBJECTS)
    assert tree(uncached) == before


def test_yaml_cache_never_hides_a_changed_file_or_object(tmp_path):
    """A file edited by hand (its text no longer has the remembered sum) and a changed
    object are both written again, with the same diff as without the cache; check mode
    writes nothing either way."""
    dest, cache = tmp_path / "out", str(tmp_path / "cache")
    render(str(dest), "platform", "demo", OBJECTS, cache_dir=cache)
    web = dest / "platform/demo/deployment-demo-web.yaml"
    web.write_text(web.read_text().replace("replicas: 1", "replicas: 5"))
    changed = [dict(OBJECTS[2], data={"run.sh": "#!/bin/sh\necho bye\n"})] + OBJECTS[:2]
    edited = tree(dest)
    checked = render(str(dest), "platform", "demo", changed, check_mode=True, cache_dir=cache)
    assert tree(dest) == edited
    plain_dest = tmp_path / "plain"
    shutil.copytree(dest, plain_dest)
    expected = render(str(plain_dest), "platform", "demo", changed, check_mode=True)
    assert checked["written"] == expected["written"] == ["platform/demo/configmap-demo-script.yaml", "platform/demo/deployment-demo-web.yaml"]
    assert [(d["before"], d["after"]) for d in checked["diff"]] == [(d["before"], d["after"]) for d in expected["diff"]]
    result = render(str(dest), "platform", "demo", changed, cache_dir=cache)
    assert result["written"] == expected["written"]
    assert "replicas: 1" in web.read_text() and "echo bye" in (dest / "platform/demo/configmap-demo-script.yaml").read_text()


def test_yaml_cache_is_keyed_by_the_serialiser(tmp_path):
    """Entries made by another serialiser (other to_yaml code or PyYAML) are never used."""
    from ansible_collections.researchops.mlops.plugins.module_utils import k8s_render

    dest, cache = tmp_path / "out", tmp_path / "cache"
    render(str(dest), "platform", "demo", OBJECTS, cache_dir=str(cache))
    with mock.patch.object(k8s_render, "_serialiser_id", return_value="other"), \
            mock.patch.object(k8s_render, "to_yaml", wraps=k8s_render.to_yaml) as dump:
        render(str(dest), "platform", "demo", OBJECTS, cache_dir=str(cache))
    assert len(object_dumps(dump)) == len(OBJECTS)
    assert sorted(p.name for p in (cache / "rendered").iterdir()) == sorted(["other", k8s_render._serialiser_id()])
