"""What k3s and the platform's controllers would do, done by hand for a site.yml apply
on a bare control plane: k3s's Traefik (Deployment + IngressClass, checked by the ingress
role) and cert-manager issuing the lab CA (Certificate Ready + its Secret, waited for by
the cert_manager role)."""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path

import yaml

# site.yml -e ...: apply to the control plane, no roll-out waits (no Pod ever runs).
WAITS_OFF = [
    f"{role}_wait=false"
    for role in (
        "argo_events", "argo_workflows", "argocd", "cert_manager", "harbor", "ingress",
        "nvidia_device_plugin", "object_storage", "postgresql", "storage", "pipelines",
    )
]

TRAEFIK = [
    {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "traefik"}, "spec": {"controller": "traefik.io/ingress-controller"}},
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "traefik", "namespace": "kube-system"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "traefik"}},
            "template": {"metadata": {"labels": {"app": "traefik"}}, "spec": {"containers": [{"name": "traefik", "image": "traefik:v3"}]}},
        },
    },
]


def node(name, labels=None):
    """A registered Node without a kubelet (the local inventory's example nodes)."""
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": dict(labels or {}, **{"kubernetes.io/hostname": name})}}


def traefik_crds():
    """The Traefik CRDs the platform creates objects of (k3s's traefik-crd chart installs
    them): the subset the render validates against, roles/k8s_sink/files/crds."""
    folder = Path(__file__).resolve().parents[2] / "roles" / "k8s_sink" / "files" / "crds"
    return [doc for path in sorted(folder.glob("*.yml")) for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def k3s_stand_ins(kubectl, nodes=("gpu-h100-01", "cpu-01")):
    crds = traefik_crds()
    kubectl("apply", "--server-side", "--field-manager=k3s", "-f", "-", input="\n---\n".join(json.dumps(obj) for obj in crds))
    for crd in crds:
        kubectl("wait", f"crd/{crd['metadata']['name']}", "--for=condition=Established", "--timeout=60s")
    objects = TRAEFIK + [node(name) for name in nodes]
    kubectl("apply", "--server-side", "--field-manager=k3s", "-f", "-", input="\n---\n".join(json.dumps(obj) for obj in objects))
    kubectl("wait", "-n", "kube-system", "deploy/traefik", "--for=condition=Available", "--timeout=60s")


def set_condition(kubectl, kind, name, namespace, condition, status="True"):
    patch = {"status": {"conditions": [{"type": condition, "status": status, "reason": "SetByTest", "message": "set by the cluster test",
                                        "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]}}
    kubectl("patch", kind, name, "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(patch))


class CertManagerStandIn(threading.Thread):
    """Issues the lab CA as soon as its Certificate exists (what cert-manager would do)."""

    def __init__(self, kubectl, namespace="cert-manager", name="researchops-ca"):
        super().__init__(daemon=True)
        self.kubectl, self.namespace, self.name = kubectl, namespace, name
        self.done = threading.Event()
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            found = self.kubectl("get", "certificate", self.name, "-n", self.namespace, "-o", "json", check=False)
            if found.returncode == 0 and any(c.get("type") == "Ready" for c in json.loads(found.stdout).get("status", {}).get("conditions") or []):
                self.done.set()
                return
            if found.returncode == 0:
                pem = "-----BEGIN CERTIFICATE-----\nTEST\n-----END CERTIFICATE-----\n"
                secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                          "metadata": {"name": self.name, "namespace": self.namespace},
                          "data": {key: base64.b64encode(pem.encode()).decode() for key in ("ca.crt", "tls.crt", "tls.key")}}
                self.kubectl("apply", "--server-side", "--field-manager=cert-manager", "-f", "-", input=json.dumps(secret))
                set_condition(self.kubectl, "certificate", self.name, self.namespace, "Ready")
                self.done.set()
                return
            time.sleep(1)

    def stop(self):
        self.stopping.set()
        self.join(timeout=10)


class KubeletStandIn(threading.Thread):
    """What the kubelets of `nodes` would do with their pods, for a control plane without
    any: a pod bound to one of them is reported Running and Ready (status subresource), and
    a pod with a deletionTimestamp is deleted with grace period 0 (the kubelet's last step
    once the containers stopped). Nodes added to `down` answer no more: their pods stay
    Terminating. `finished` holds (pod, node, the node's spec.unschedulable then) for each
    pod it deleted; `error` the exception that stopped it, if one did."""

    def __init__(self, kubeconfig, nodes, namespace):
        super().__init__(daemon=True)
        from kubernetes import client, config

        self.api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        self.nodes, self.namespace, self.down = set(nodes), namespace, set()
        self.finished = []
        self.error = None
        self.stopping = threading.Event()

    def step(self):
        from kubernetes.client.exceptions import ApiException

        for pod in self.api.list_namespaced_pod(self.namespace).items:
            meta = pod.metadata
            if pod.spec.node_name not in self.nodes - self.down:
                continue
            try:
                if meta.deletion_timestamp is not None:
                    cordoned = bool(self.api.read_node(pod.spec.node_name).spec.unschedulable)
                    self.api.delete_namespaced_pod(meta.name, self.namespace, grace_period_seconds=0)
                    self.finished.append((meta.name, pod.spec.node_name, cordoned))
                elif pod.status.phase != "Running":
                    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                    ready = [{"type": kind, "status": "True", "lastTransitionTime": now} for kind in ("Initialized", "ContainersReady", "Ready")]
                    self.api.patch_namespaced_pod_status(meta.name, self.namespace, {"status": {"phase": "Running", "conditions": ready, "startTime": now}})
            except ApiException as e:
                if e.status != 404:
                    raise

    def run(self):
        while not self.stopping.is_set():
            try:
                self.step()
            except Exception as e:  # reported by the test through self.error
                self.error = e
                return
            self.stopping.wait(0.3)

    def stop(self):
        self.stopping.set()
        self.join(timeout=10)
