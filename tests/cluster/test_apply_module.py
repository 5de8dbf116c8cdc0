"""researchops.mlops.k8s_apply and gpu_node_labels through ansible-playbook against a real
API server: rejected objects, waits, an API server that goes away mid-apply, GPU labels
on registered Node objects. Each test works in its own namespace."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from .conftest import get_json
from .standins import node, set_condition

REPO_ROOT = Path(__file__).resolve().parents[2]
NVIDIA_SMI = REPO_ROOT / "tests" / "unit" / "fixtures" / "nvidia_smi"


def apply_task(objects, **options):
    return {"name": "apply", "researchops.mlops.k8s_apply": dict({"kubeconfig": "{{ kubeconfig }}", "objects": objects}, **options), "register": "out"}


def show(register="out"):
    return {"name": "show", "ansible.builtin.debug": {"msg": f"RESULT={{{{ {register} | to_json }}}}"}}


def result_of(proc):
    for line in proc.stdout.splitlines():
        if '"msg": "RESULT=' in line:
            return json.loads(json.loads(line.strip().split(": ", 1)[1])[len("RESULT="):])
    raise AssertionError(proc.stdout[-3000:] + proc.stderr[-2000:])


def recap(proc):
    line = next(line for line in proc.stdout.splitlines() if line.startswith("localhost") and "changed=" in line)
    return {part.split("=")[0]: int(part.split("=")[1]) for part in line.split(":", 1)[1].split()}


def namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def configmap(ns, name, **data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data or {"k": "v"}}


GADGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.test.researchops.io"},
    "spec": {
        "group": "test.researchops.io",
        "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget", "listKind": "GadgetList"},
        "scope": "Namespaced",
        "versions": [{
            "name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            }}},
        }],
    },
}


def gadget(ns, name):
    return {"apiVersion": "test.researchops.io/v1", "kind": "Gadget", "metadata": {"name": name, "namespace": ns}, "spec": {"size": 1}}


def test_a_rejected_object_fails_the_play_naming_it_and_the_rest_of_the_wave_is_applied(playbook, kubectl):
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad", "namespace": "t-reject"},
           "spec": {"replicsa": 1, "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    objects = [namespace("t-reject"), configmap("t-reject", "first"), bad, configmap("t-reject", "second")]
    proc = playbook([dict(apply_task(objects), ignore_errors=True), show()])
    out = result_of(proc)
    assert out["failed"] is True
    assert "Deployment t-reject/bad (apps/v1)" in out["msg"]
    assert "replicsa" in out["msg"], "the API server's own message is passed on"
    assert sorted(out["applied"]) == ["ConfigMap t-reject/first", "ConfigMap t-reject/second", "Namespace t-reject"]
    for name in ("first", "second"):
        kubectl("get", "configmap", name, "-n", "t-reject")
    assert kubectl("get", "deployment", "bad", "-n", "t-reject", check=False).returncode != 0


def test_waits_on_conditions_set_through_the_status_subresource_complete(playbook, kubectl):
    objects = [namespace("t-wait"), GADGET_CRD, gadget("t-wait", "ready-later")]
    assert playbook([apply_task(objects)]).returncode == 0
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "idle", "namespace": "t-wait"},
                  "spec": {"replicas": 0, "selector": {"matchLabels": {"a": "idle"}},
                           "template": {"metadata": {"labels": {"a": "idle"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}

    def mark_ready():
        time.sleep(4)
        set_condition(kubectl, "gadget", "ready-later", "t-wait", "Ready")

    setter = threading.Thread(target=mark_ready)
    setter.start()
    wait_for = [{"apiVersion": "test.researchops.io/v1", "kind": "Gadget", "name": "ready-later", "namespace": "t-wait",
                 "condition": {"type": "Ready", "status": "True"}}]
    proc = playbook([apply_task(objects + [deployment], wait=True, wait_for=wait_for, wait_timeout=90, wait_sleep=1), show()])
    setter.join()
    out = result_of(proc)
    assert proc.returncode == 0, out
    waited = {entry["object"]: entry["ready"] for entry in out["waited"]}
    assert waited == {"Deployment t-wait/idle (apps/v1) rolled out": True, "Gadget t-wait/ready-later (test.researchops.io/v1)": True}


def test_a_wait_that_never_completes_fails_naming_the_object_within_its_timeout(playbook, kubectl):
    objects = [namespace("t-never"), GADGET_CRD, gadget("t-never", "never")]
    wait_for = [{"apiVersion": "test.researchops.io/v1", "kind": "Gadget", "name": "never", "namespace": "t-never",
                 "condition": {"type": "Ready", "status": "True"}}]
    started = time.monotonic()
    proc = playbook([dict(apply_task(objects, wait=True, wait_for=wait_for, wait_timeout=6, wait_sleep=1), ignore_errors=True), show()])
    out = result_of(proc)
    assert out["failed"] is True
    assert "timed out after 6s waiting for: Gadget t-never/never (test.researchops.io/v1)" in out["msg"]
    assert time.monotonic() - started < 60


def test_objects_by_reference_crds_from_an_upstream_manifest_and_src_files(playbook, kubectl, tmp_path):
    """crds_from: only the CRDs of a pinned manifest, read through the upstream_manifest
    lookup with its checksum check (a wrong sha256 fails naming the file); src: a JSON
    List file read by the action. A re-run is verified equal and changes nothing."""
    upstream = tmp_path / "upstream"
    (upstream / "gadgets" / "v1").mkdir(parents=True)
    manifest = yaml.safe_dump_all([GADGET_CRD, configmap("t-ref", "not-a-crd")]).encode()
    (upstream / "gadgets" / "v1" / "install.yaml").write_bytes(manifest)
    entry = {"path": "gadgets/v1/install.yaml", "url": "", "sha256": hashlib.sha256(manifest).hexdigest()}
    src = tmp_path / "objects.json"
    src.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [namespace("t-ref"), gadget("t-ref", "by-ref")]}))
    task = {"name": "apply", "researchops.mlops.k8s_apply": {"kubeconfig": "{{ kubeconfig }}", "crds_from": [entry], "src": [str(src)]},
            "register": "out", "vars": {"mlops_upstream_dir": str(upstream)}}
    proc = playbook([task, show()])
    out = result_of(proc)
    assert proc.returncode == 0, out
    # the CRD may exist already (the wait tests apply the same one): applied or verified equal
    assert sorted(out["applied"] + out["unchanged"]) == ["CustomResourceDefinition gadgets.test.researchops.io", "Gadget t-ref/by-ref", "Namespace t-ref"]
    assert {"Gadget t-ref/by-ref", "Namespace t-ref"} <= set(out["applied"])
    assert get_json(kubectl, "gadget", "by-ref", "-n", "t-ref")["spec"] == {"size": 1}
    assert kubectl("get", "configmap", "not-a-crd", "-n", "t-ref", check=False).returncode != 0
    proc = playbook([task, show()])
    out = result_of(proc)
    assert recap(proc)["changed"] == 0 and len(out["unchanged"]) == 3, out
    bad = dict(task, **{"researchops.mlops.k8s_apply": dict(task["researchops.mlops.k8s_apply"], crds_from=[dict(entry, sha256="0" * 64)])})
    out = result_of(playbook([dict(bad, ignore_errors=True), show()]))
    assert out["failed"] is True and "sha256 mismatch" in out["msg"] and "gadgets/v1/install.yaml" in out["msg"], out


def test_api_server_stopped_mid_apply_then_a_rerun_converges(playbook, control_plane, kubectl, tmp_path):
    objects = [namespace("t-interrupt")] + [configmap("t-interrupt", f"cm-{i:04d}", payload="x" * 2000) for i in range(800)]
    play = [{"name": "cluster test", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars": {"ansible_python_interpreter": sys.executable},
             "tasks": [apply_task(objects, kubeconfig=str(control_plane.kubeconfig), workers=2)]}]
    path = tmp_path / "interrupt.yml"
    path.write_text(yaml.safe_dump(play))
    first = subprocess.Popen([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(path)],
                             cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while kubectl("get", "configmap", "cm-0005", "-n", "t-interrupt", check=False).returncode != 0:
        assert first.poll() is None, "the first apply ended before the API server could be stopped"
        assert time.monotonic() < deadline
        time.sleep(0.2)
    control_plane.stop_process("kube-apiserver")
    output = first.communicate(timeout=600)[0]
    assert first.returncode != 0, "the first apply should have failed when the API server went away"
    assert "t-interrupt/cm-" in output, output[-2000:]
    control_plane.start_apiserver()

    rerun = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(path)],
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    names = json.loads(kubectl("get", "configmaps", "-n", "t-interrupt", "-o", "json").stdout)["items"]
    ours = sorted(item["metadata"]["name"] for item in names if item["metadata"]["name"].startswith("cm-"))
    assert ours == [f"cm-{i:04d}" for i in range(800)]
    third = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(path)],
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert recap(third)["changed"] == 0


# ---------------------------------------------------------------- GPU labels on Nodes
def recorded(name):
    case = yaml.safe_load((NVIDIA_SMI / f"{name}.yml").read_text())
    return case["expected"], case["labels"]


def labels_task(nodes, register="out"):
    return {"name": "labels", "researchops.mlops.gpu_node_labels": {"kubeconfig": "{{ kubeconfig }}", "nodes": nodes}, "register": register}


def node_labels(kubectl, name):
    return json.loads(kubectl("get", "node", name, "-o", "json").stdout)["metadata"].get("labels") or {}


@pytest.fixture(scope="module")
def gpu_nodes(kubectl):
    foreign = {"feature.node.kubernetes.io/cpu-model.vendor_id": "Intel", "nvidia.com/cuda.driver.major": "535", "team": "vision"}
    names = ("gpu-zero", "gpu-one", "gpu-eight")
    kubectl("apply", "--server-side", "--field-manager=k3s", "-f", "-",
            input="\n---\n".join(json.dumps(node(name, foreign)) for name in names))
    return names, foreign


def test_gpu_labels_on_registered_nodes(playbook, kubectl, gpu_nodes):
    """Expected labels: the `labels` recorded with each nvidia-smi fixture (GPU Feature
    Discovery's names). Labels of other managers (GFD's cuda.driver, NFD, a user) stay."""
    names, foreign = gpu_nodes
    facts = {name: recorded(case) for name, case in zip(names, ("no_gpu", "one_gpu_t4", "eight_h100"))}
    nodes = [{"name": name, "gpu": fact} for name, (fact, _labels) in facts.items()]

    proc = playbook([labels_task(nodes, "checked")], "--check")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert all("nvidia.com/gpu.present" not in node_labels(kubectl, name) for name in names), "check mode wrote labels"

    proc = playbook([labels_task(nodes), show()])
    assert proc.returncode == 0, proc.stdout[-3000:]
    for name, (_fact, expected) in facts.items():
        live = node_labels(kubectl, name)
        managed = {key: value for key, value in live.items() if key.startswith(("nvidia.com/gpu.", "nvidia.com/mig."))}
        assert managed == expected, name
        assert {key: live[key] for key in foreign} == foreign

    proc = playbook([labels_task(nodes)])
    assert recap(proc)["changed"] == 0

    # gpu-one loses its GPU: the stale nvidia.com/gpu.* labels go, foreign ones stay
    lost = [{"name": "gpu-one", "gpu": recorded("no_gpu")[0]}]
    proc = playbook([labels_task(lost)])
    assert recap(proc)["changed"] == 1
    live = node_labels(kubectl, "gpu-one")
    assert not [key for key in live if key.startswith(("nvidia.com/gpu.", "nvidia.com/mig."))]
    assert {key: live[key] for key in foreign} == foreign
