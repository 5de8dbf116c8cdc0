"""playbooks/node_remove.yml's drain and delete, against the layer's real API server
(`--limit localhost`: the reset of the hosts is the molecule k3s scenarios' part).

What must happen comes from kubernetes.core 6.2's `plugins/modules/k8s_drain.py` (as
bundled with the `ansible` package) and the Kubernetes eviction API:
- `K8sDrainAnsible.delete_or_evict_pods` cordons the node (`patch_node`, spec.unschedulable)
  before it evicts anything;
- `filter_pods` keeps DaemonSet-owned pods off the eviction list with ignore_daemonsets and
  lets emptyDir pods go with delete_emptydir_data; `list_pods` selects spec.nodeName, so
  pods on other nodes are never touched;
- `evict_pods` posts an Eviction per pod and fails at once, naming the pod, when the API
  refuses it: the eviction subresource answers 429 while a PodDisruptionBudget allows no
  disruption for a Running pod (kubernetes pkg/registry/core/pod/storage/eviction.go,
  `EvictionREST.Create`: Pending pods bypass the budget, hence the kubelet stand-in's Running);
- `wait_for_pod_deletion` only *warns* ("timeout reached while pods were still running.")
  when the evicted pods are still there after wait_timeout; `kubectl drain` fails then.
  The playbook must not delete the Node in that case (the reset would kill those pods).

No kubelet or scheduler runs here: the test binds the controllers' pods to the fake Nodes
itself (a Binding, what the scheduler posts) and tests/cluster/standins.py's KubeletStandIn
reports them Running/Ready and finishes the deletion of pods the eviction marked (grace
period 0), unless their node is "down". The harness's DaemonSet controller (the openshift
fork's) counts no fake Node as eligible and deletes a pod it controls there, so the
DaemonSet's pods are made by the test with a non-controller ownerReference of kind
DaemonSet: what `filter_pods` reads (any owner of that kind; kubectl drain reads the
controller reference only).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .standins import KubeletStandIn

REPO_ROOT = Path(__file__).resolve().parents[2]
NS = "node-remove"
SERVER, GONE, OTHER, GUARDED, DOWN = "nr-server-01", "nr-gpu-03", "nr-cpu-04", "nr-gpu-05", "nr-gpu-06"
NODES = (SERVER, GONE, OTHER, GUARDED, DOWN)
# ReplicaSet -> (node its pod is bound to, with an emptyDir volume)
REPLICASETS = {"web": (GONE, False), "scratch": (GONE, True), "other": (OTHER, False),
               "guarded": (GUARDED, False), "hung": (DOWN, False)}
DAEMON_NODES = (GONE, OTHER)  # a DaemonSet pod on each


def pod_template(app, empty_dir=False):
    spec = {"containers": [{"name": "main", "image": "registry.invalid/app:1"}], "terminationGracePeriodSeconds": 30}
    if empty_dir:
        spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
        spec["containers"][0]["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
    return {"metadata": {"labels": {"app": app}}, "spec": spec}


def objects():
    nodes = [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}
             for name in NODES]
    replicasets = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": NS},
                    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": pod_template(name, empty_dir)}}
                   for name, (_node, empty_dir) in REPLICASETS.items()]
    daemon = pod_template("agent")
    daemon["spec"]["nodeSelector"] = {"node-remove-test/no-node": "yes"}  # its controller leaves the test's pods alone
    daemonset = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": NS},
                 "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": daemon}}
    budget = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "guarded", "namespace": NS},
              "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}}
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
    return [namespace, *nodes, *replicasets, daemonset, budget]


def daemon_pod(node, owner_uid):
    pod = pod_template("agent-pod")  # outside the DaemonSet's selector: not adopted
    pod["spec"]["nodeName"] = node
    pod["metadata"].update(name=f"agent-{node}", namespace=NS, ownerReferences=[
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": owner_uid}])
    return {"apiVersion": "v1", "kind": "Pod", **pod}


def wait_for(what, check, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


class Cluster:
    def __init__(self, plane, env, folder):
        from kubernetes import client, config

        self.plane, self.env, self.folder = plane, env, folder
        api_client = config.new_client_from_config(config_file=str(plane.kubeconfig))
        self.core, self.policy = client.CoreV1Api(api_client), client.PolicyV1Api(api_client)
        self.runs = 0
        self.inventory = folder / "hosts.yml"
        self.inventory.write_text(yaml.safe_dump({"all": {
            "hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
            "children": {"k3s_cluster": {"children": {
                "k3s_servers": {"hosts": {SERVER: {}}},
                "k3s_agents": {"hosts": {name: {} for name in NODES if name != SERVER}}}}}}}))

    def set_up(self):
        self.plane.kubectl("apply", "--server-side", "--field-manager=node-remove-test", "-f", "-",
                           input="\n---\n".join(json.dumps(obj) for obj in objects()))
        wait_for("the ReplicaSets' pods", lambda: len(self.pods()) == len(REPLICASETS))
        pods = self.pods()
        for pod in pods:  # the scheduler's part
            binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod.metadata.name},
                       "target": {"apiVersion": "v1", "kind": "Node", "name": REPLICASETS[pod.metadata.owner_references[0].name][0]}}
            self.core.create_namespaced_binding(NS, binding, _preload_content=False)
        owner = self.plane.kubectl("get", "daemonset", "agent", "-n", NS, "-o", "jsonpath={.metadata.uid}").stdout
        for node in DAEMON_NODES:
            self.core.create_namespaced_pod(NS, daemon_pod(node, owner))

    def pods(self, node=None):
        selector = f"spec.nodeName={node}" if node else ""
        return self.core.list_namespaced_pod(NS, field_selector=selector).items

    def running(self):
        pods = [pod for pod in self.pods() if pod.spec.node_name]
        return len(pods) == len(REPLICASETS) + len(DAEMON_NODES) and all(pod.status.phase == "Running" for pod in pods)

    def node(self, name):
        from kubernetes.client.exceptions import ApiException

        try:
            return self.core.read_node(name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def run(self, hosts, *extra):
        self.runs += 1
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "playbooks/node_remove.yml", "-i", str(self.inventory),
               "--limit", "localhost", "-e", f"mlops_kubeconfig={self.plane.kubeconfig}",
               "-e", f"node_remove_hosts={hosts}", "-e", "node_remove_confirm=remove-nodes", *extra]
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=self.env, capture_output=True, text=True, timeout=300, check=False)
        (self.folder / f"run{self.runs}.log").write_text(proc.stdout + proc.stderr)
        return proc


@pytest.fixture(scope="module")
def cluster(control_plane, ansible_env, tmp_path_factory):
    env = dict(ansible_env, ANSIBLE_NOCOLOR="1")
    state = Cluster(control_plane, env, tmp_path_factory.mktemp("node-remove"))
    kubelet = KubeletStandIn(control_plane.kubeconfig, NODES, NS)
    state.set_up()
    kubelet.start()
    state.kubelet = kubelet
    try:
        wait_for("the bound pods Running", state.running)
        yield state
    finally:
        kubelet.stop()
        # what podgc would do once the Nodes are gone: the down node's pod is still Terminating
        control_plane.kubectl("delete", "pods", "--all", "-n", NS, "--grace-period=0", "--force", "--wait=false", check=False)
        control_plane.kubectl("delete", "namespace", NS, "--wait=false", check=False)
        control_plane.kubectl("delete", "node", *NODES, "--ignore-not-found", "--wait=false", check=False)


def uids(pods):
    return {pod.metadata.name: pod.metadata.uid for pod in pods}


def test_a_disruption_budget_refuses_the_drain_and_the_node_stays(cluster):
    """The stand-in can say no: minAvailable 1 over the one Running, Ready `guarded` pod."""

    def settled():
        status = cluster.policy.read_namespaced_pod_disruption_budget_status("guarded", NS).status
        return status and status.observed_generation and status.current_healthy == 1 and status.disruptions_allowed == 0

    wait_for("the disruption controller's budget status", settled)
    [pod] = cluster.pods(GUARDED)
    proc = cluster.run(GUARDED, "-e", "node_remove_drain_timeout=5")
    assert proc.returncode != 0
    assert f"Failed to delete pod {NS}/{pod.metadata.name} due to: Cannot evict pod as it would violate the pod's disruption budget" in proc.stdout
    assert "TASK [Delete the Node objects]" not in proc.stdout
    assert cluster.node(GUARDED) is not None
    [still] = cluster.pods(GUARDED)
    assert still.metadata.uid == pod.metadata.uid and still.metadata.deletion_timestamp is None
    assert cluster.node(GUARDED).spec.unschedulable  # k8s_drain leaves it cordoned


def test_pods_still_terminating_after_the_wait_keep_the_node(cluster):
    """The node's kubelet is down: the evicted pod never goes, k8s_drain only warns after
    wait_timeout, and the playbook stops before it deletes the Node, naming the pod."""
    cluster.kubelet.down.add(DOWN)
    [pod] = cluster.pods(DOWN)
    proc = cluster.run(DOWN, "-e", "node_remove_drain_timeout=2")
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert f"Pods still on node {DOWN} after the drain (2 s): {NS}/{pod.metadata.name}. The Node is kept." in proc.stdout
    assert cluster.node(DOWN) is not None
    [still] = cluster.pods(DOWN)
    assert still.metadata.deletion_timestamp is not None  # it was evicted


def test_check_mode_changes_nothing(cluster):
    """k8s_drain declares no check mode (Ansible skips it); the Node deletion is only reported."""
    before = uids(cluster.pods(OTHER))
    proc = cluster.run(OTHER, "--check")
    assert proc.returncode == 0, proc.stdout[-4000:]
    node = cluster.node(OTHER)
    assert node is not None and not node.spec.unschedulable
    assert uids(cluster.pods(OTHER)) == before
    assert all(pod.metadata.deletion_timestamp is None for pod in cluster.pods(OTHER))


def test_drain_evicts_what_it_must_then_deletes_the_node(cluster):
    before, other_before = uids(cluster.pods(GONE)), uids(cluster.pods(OTHER))
    apps = {name.split("-")[0] for name in before}
    assert apps == {"web", "scratch", "agent"}, before
    daemon_pod = next(name for name in before if name.startswith("agent-"))

    proc = cluster.run(GONE)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert cluster.kubelet.error is None
    assert cluster.node(GONE) is None
    assert {name for name in NODES if cluster.node(name)} == set(NODES) - {GONE}

    evicted = [(pod, node, cordoned) for pod, node, cordoned in cluster.kubelet.finished if node == GONE]
    assert sorted(pod for pod, _node, _cordoned in evicted) == sorted(name for name in before if name != daemon_pod)
    assert all(cordoned for _pod, _node, cordoned in evicted), "a pod was evicted before the node was cordoned"
    left = uids(cluster.pods(GONE))
    assert left == {daemon_pod: before[daemon_pod]}, "the DaemonSet pod stays (ignore_daemonsets)"
    assert cluster.core.read_namespaced_pod(daemon_pod, NS).metadata.deletion_timestamp is None
    assert uids(cluster.pods(OTHER)) == other_before
    assert all(pod.metadata.deletion_timestamp is None for pod in cluster.pods(OTHER))


def test_a_run_after_the_node_is_gone_goes_on(cluster):
    """A repeated run (the reset of the host failed the first time) finds no Node to drain
    and carries on, instead of k8s_drain's "Node ... not found."."""
    assert cluster.node(GONE) is None
    proc = cluster.run(GONE)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "not found" not in proc.stdout
    assert "changed=0" in next(line for line in proc.stdout.splitlines() if line.startswith("localhost"))
