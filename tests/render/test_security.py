"""Security layer over the render of the embedded default inventory (issue 9): RBAC
(nobody outside a namespace reads its Secrets, no wildcard in our own Roles), Pod
Security (every namespace labelled, every pod template restricted or excepted with a
reason, seccomp RuntimeDefault everywhere), NetworkPolicies (default deny per namespace,
the documented flows allowed and the dangerous ones denied), supply chain (images by
digest, charts from immutable sources, platform Applications in their own AppProject)
and exposure (nothing reachable but through the Ingresses).

Every exception comes from the table "Exceptions" of docs/security.md (one place, with
its reason); an exception that matches nothing fails too, so the list stays honest."""
from __future__ import annotations

import re

import pytest
import security_checks as sec
import yaml

pytestmark = pytest.mark.slow

PSA = "pod-security.kubernetes.io/"
LEVELS = ("restricted", "baseline", "privileged")
SYSTEM_NAMESPACES = {"kube-system", "kube-public", "kube-node-lease", "default"}
# The ingress controller of k3s: Traefik in kube-system (k3s manifests/traefik.yaml,
# chart labels app.kubernetes.io/name=traefik).
TRAEFIK = {"namespace": "kube-system", "labels": {"app.kubernetes.io/name": "traefik",
                                                  "app.kubernetes.io/instance": "traefik-kube-system"}}
# A pipeline step: a pod of a Workflow in the pipelines namespace, running a model
# repository's code (labels the Argo controller puts on workflow pods).
STEP = {"namespace": "mlops-pipelines", "labels": {"workflows.argoproj.io/workflow": "mnist-ct-x7k2p",
                                                   "workflows.argoproj.io/completed": "false"}}


# ---------------------------------------------------------------- exceptions table (security_checks.exceptions)
@pytest.fixture(scope="module")
def excepted(repo_root):
    return sec.exceptions(repo_root)


def objects_of(rendered, *kinds):
    return [obj for _source, obj in rendered if obj["kind"] in kinds]


def assert_used(excepted, check, used):
    stale = set(excepted.get(check, {})) - set(used)
    assert not stale, f"docs/security.md lists {check} exceptions that match nothing (remove them): {sorted(stale)}"


# ---------------------------------------------------------------- RBAC
def test_no_service_account_reads_secrets_beyond_its_namespace(rendered, excepted):
    objects = [obj for _source, obj in rendered]
    found = {}
    for binding, subject, scope, powers in sec.secret_access(objects):
        key = sec.ref(binding)
        found.setdefault(key, []).append(f"{subject['kind']} {subject.get('namespace', '')}/{subject['name']} "
                                         f"-> {sorted(powers)} in {scope}")
    allowed = excepted.get("secret-access", {})
    assert {k: v for k, v in found.items() if k not in allowed} == {}
    assert_used(excepted, "secret-access", found)


def test_the_secret_access_check_can_fail():
    role = {"kind": "ClusterRole", "metadata": {"name": "r"},
            "rules": [{"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create"]}]}
    binding = {"kind": "ClusterRoleBinding", "metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "r"},
               "subjects": [{"kind": "ServiceAccount", "namespace": "argo", "name": "x"}]}
    assert [found[3] for found in sec.secret_access([role, binding])] == [{"workloads"}]
    role["rules"] = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}]
    binding.update(kind="RoleBinding", metadata={"name": "b", "namespace": "other"})
    assert [found[3] for found in sec.secret_access([role, binding])] == [{"read"}]
    role["rules"][0]["resourceNames"] = ["one"]
    assert sec.secret_access([role, binding]) == []


def test_no_wildcard_in_our_roles(rendered):
    bad = {sec.ref(obj): sec.wildcards(obj.get("rules")) for obj in objects_of(rendered, "Role", "ClusterRole")
           if sec.is_ours(obj) and sec.wildcards(obj.get("rules"))}
    assert bad == {}


def test_no_standing_token_secret(rendered):
    """Tokens are short-lived (kubectl create token); no kubernetes.io/service-account-token
    Secret of ours, except the ones Argo's SSO RBAC reads (none by default)."""
    tokens = [sec.ref(o) for o in objects_of(rendered, "Secret") if o.get("type") == "kubernetes.io/service-account-token"]
    assert tokens == []


# ---------------------------------------------------------------- Pod Security
def test_every_namespace_has_pod_security_labels(rendered, excepted):
    # "<namespace> <level>" rows: the namespaces enforcing less than restricted.
    levels = {key.split()[0]: key.split()[-1] for key in excepted.get("namespace-level", {})}
    bad = {}
    for ns in objects_of(rendered, "Namespace"):
        name, labels = ns["metadata"]["name"], ns["metadata"].get("labels") or {}
        enforce = labels.get(PSA + "enforce")
        want = levels.get(name, "restricted")
        if enforce not in LEVELS or enforce != want:
            bad[name] = f"enforce={enforce!r}, expected {want!r}"
        for mode in ("audit", "warn"):
            if labels.get(PSA + mode) != "restricted":
                bad[f"{name} {mode}"] = f"{labels.get(PSA + mode)!r}, expected 'restricted'"
        if labels.get(PSA + "enforce-version") in (None, "latest"):
            bad[f"{name} enforce-version"] = "pin the Pod Security version (v1.<minor> of k3s)"
    assert bad == {}
    names = {ns["metadata"]["name"] for ns in objects_of(rendered, "Namespace")}
    assert_used(excepted, "namespace-level", {key for key in excepted.get("namespace-level", {}) if key.split()[0] in names})


def namespace_levels(rendered):
    return {ns["metadata"]["name"]: (ns["metadata"].get("labels") or {}).get(PSA + "enforce")
            for ns in objects_of(rendered, "Namespace")}


def test_every_pod_template_is_restricted_or_excepted(rendered, excepted):
    allowed = excepted.get("pod-security", {})
    bad, used = {}, set()
    for obj, spec in sec.pod_templates(rendered):
        violations = sec.restricted_violations(spec)
        if not violations:
            continue
        if sec.ref(obj) in allowed:
            used.add(sec.ref(obj))
            continue
        bad[sec.ref(obj)] = violations
    assert bad == {}
    assert_used(excepted, "pod-security", used)


def test_every_pod_template_is_admitted_by_its_namespace(rendered):
    """A restricted namespace must not receive a non-restricted pod template (the API
    server would refuse its pods at run time)."""
    levels = namespace_levels(rendered)
    bad = {sec.ref(obj): sec.restricted_violations(spec) for obj, spec in sec.pod_templates(rendered)
           if levels.get(obj["metadata"].get("namespace")) == "restricted" and sec.restricted_violations(spec)}
    assert bad == {}


def test_seccomp_runtime_default_everywhere(rendered):
    bad = [sec.ref(obj) for obj, spec in sec.pod_templates(rendered) if not sec.seccomp_runtime_default(spec)]
    assert bad == []


def test_eventbus_pods_get_seccomp(rendered):
    """argo-events v1.9.11 pkg/reconciler/eventbus/installer/jetstream.go copies
    spec.jetstream.securityContext into the StatefulSet's pod template."""
    for bus in objects_of(rendered, "EventBus"):
        assert bus["spec"]["jetstream"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_the_restricted_check_can_fail():
    spec = {"containers": [{"name": "c", "image": "i", "securityContext": {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"}}}]}
    assert sec.restricted_violations(spec) == []
    spec["volumes"] = [{"name": "h", "hostPath": {"path": "/"}}]
    spec["containers"][0]["securityContext"]["capabilities"]["add"] = ["SYS_ADMIN"]
    assert len(sec.restricted_violations(spec)) == 2


# ---------------------------------------------------------------- NetworkPolicies
@pytest.fixture(scope="module")
def policies(rendered):
    return objects_of(rendered, "NetworkPolicy")


def test_every_namespace_denies_ingress_by_default(rendered, policies):
    missing = [ns["metadata"]["name"] for ns in objects_of(rendered, "Namespace")
               if not sec.default_deny_ingress(policies, ns["metadata"]["name"])]
    assert missing == []


def service_pods(rendered, namespace, name):
    matches = [o for o in objects_of(rendered, "Service")
               if o["metadata"]["name"] == name and o["metadata"]["namespace"] == namespace]
    assert matches, f"Service {namespace}/{name} not rendered"
    return {"namespace": namespace, "labels": matches[0]["spec"]["selector"]}


def container_port(rendered, namespace, selector, name):
    """Number of the named container port of the pods `selector` picks (a Service's
    named targetPort)."""
    for obj, spec in sec.pod_templates(rendered):
        template_labels = (obj["spec"].get("template", {}).get("metadata", {}) or {}).get("labels") or {}
        if obj["metadata"].get("namespace") == namespace and all(template_labels.get(k) == v for k, v in selector.items()):
            for container in spec["containers"]:
                for port in container.get("ports", []):
                    if port.get("name") == name:
                        return port["containerPort"]
    raise AssertionError(f"no pod in {namespace} with {selector} has a port named {name}")


def test_ingress_controller_reaches_every_ingress_backend(rendered, policies):
    """Each Ingress backend Service's pods accept Traefik on the Service's target port."""
    services = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects_of(rendered, "Service")}
    bad = []
    for ingress in objects_of(rendered, "Ingress"):
        ns = ingress["metadata"]["namespace"]
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = services.get((ns, backend["name"]))
                if service is None:  # a Helm chart's Service (not rendered): namespace-wide check
                    dst = {"namespace": ns, "labels": {"app": backend["name"]}}
                    ok = sec.ingress_allowed(policies, TRAEFIK, dst, 8080)
                else:
                    port = next(p for p in service["spec"]["ports"]
                                if p.get("port") == backend["port"].get("number") or p.get("name") == backend["port"].get("name"))
                    target = port.get("targetPort", port["port"])
                    if isinstance(target, str):
                        target = container_port(rendered, ns, service["spec"]["selector"], target)
                    dst = {"namespace": ns, "labels": service["spec"]["selector"]}
                    ok = sec.ingress_allowed(policies, TRAEFIK, dst, target)
                if not ok:
                    bad.append(f"{ns}/{ingress['metadata']['name']} -> {backend['name']}")
    assert bad == []


def test_pipeline_steps_cannot_reach_platform_internals(rendered, policies):
    """A model repository's code runs in a pipeline step: it must not reach the database,
    the object store's admin API, the Argo servers, Harbor's pods directly or the EventBus."""
    targets = {
        "postgresql": (service_pods(rendered, "postgresql", "postgresql"), 5432),
        "garage admin": (service_pods(rendered, "object-storage", "garage-admin"), 3903),
        "garage rpc": (service_pods(rendered, "object-storage", "garage"), 3901),
        "argo-server": (service_pods(rendered, "argo", "argo-server"), 2746),
        "argocd-repo-server": ({"namespace": "argocd", "labels": {"app.kubernetes.io/name": "argocd-repo-server"}}, 8081),
        "argocd-redis": ({"namespace": "argocd", "labels": {"app.kubernetes.io/name": "argocd-redis"}}, 6379),
        "harbor core": ({"namespace": "harbor", "labels": {"app": "harbor", "component": "core"}}, 8080),
        "eventbus": ({"namespace": "mlops-pipelines", "labels": {"controller": "eventbus-controller",
                                                                 "eventbus-name": "default"}}, 4222),
        "argo-events controller": ({"namespace": "argo-events", "labels": {"app": "controller-manager"}}, 7777),
    }
    reachable = [name for name, (dst, port) in targets.items() if sec.ingress_allowed(policies, STEP, dst, port)]
    assert reachable == []


# ---------------------------------------------------------------- egress of the pipelines namespace
PIPELINES = "mlops-pipelines"
# Pods of the pipelines namespace besides the steps, with the labels upstream gives them:
# argo-events v1.9.11 pkg/apis/events/v1alpha1/const.go (LabelEventSourceName,
# LabelSensorName) and pkg/reconciler/eventbus/installer/installer.go getLabels.
EVENTSOURCE = {"namespace": PIPELINES, "labels": {
    "controller": "eventsource-controller", "eventsource-name": "mnist-github", "owner-name": "mnist-github"}}
SENSOR = {"namespace": PIPELINES, "labels": {"controller": "sensor-controller", "sensor-name": "mnist-ci", "owner-name": "mnist-ci"}}
EVENTBUS = {"namespace": PIPELINES, "labels": {"controller": "eventbus-controller", "eventbus-name": "default",
                                               "stateful-set-name": "eventbus-default-js"}}
# The serving Deployment of the example model repository (examples/, label app).
SERVING = {"namespace": PIPELINES, "labels": {"app": "mnist-serving"}}
# Addresses: an API server (a k3s server node), GitHub, the cloud metadata endpoint.
API_SERVER = {"ip": "192.0.2.11"}
GITHUB = {"ip": "140.82.112.3"}
METADATA = {"ip": "169.254.169.254"}
DNS = {"namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}, "ip": "10.42.0.4"}


def pod(rendered, namespace, name_or_labels, ip):
    """A destination pod: the pods of a rendered Service, or given labels, at `ip` (an
    address of the pod network, which ipBlock peers see as well)."""
    if isinstance(name_or_labels, str):
        return dict(service_pods(rendered, namespace, name_or_labels), ip=ip)
    return {"namespace": namespace, "labels": name_or_labels, "ip": ip}


def connection_allowed(policies, src, dst, port, protocol="TCP"):
    """Both ends agree: the source's egress policies and the destination's ingress ones.
    `src` is a pod (no "ip" key: ingress_allowed reads one as an address outside the pods)."""
    if not sec.egress_allowed(policies, src, dst, port, protocol):
        return False
    return "namespace" not in dst or protocol != "TCP" or sec.ingress_allowed(policies, src, dst, port)


def test_pipelines_namespace_denies_egress_by_default(policies):
    assert sec.default_deny_egress(policies, PIPELINES)


def test_pipeline_steps_send_only_what_they_need(rendered, policies):
    """A step runs a model repository's code: its own namespace's egress policies (not only
    the destinations' ingress ones) must keep it from the platform's internals, the nodes'
    other ports and the cloud metadata endpoint."""
    internals = {
        "postgresql": (pod(rendered, "postgresql", "postgresql", "10.42.3.9"), 5432),
        "garage admin": (pod(rendered, "object-storage", "garage-admin", "10.42.3.10"), 3903),
        "garage rpc": (pod(rendered, "object-storage", "garage", "10.42.3.10"), 3901),
        "argo-server": (pod(rendered, "argo", "argo-server", "10.42.3.11"), 2746),
        "argocd-server": (pod(rendered, "argocd", {"app.kubernetes.io/name": "argocd-server"}, "10.42.3.12"), 8080),
        "argocd-repo-server": (pod(rendered, "argocd", {"app.kubernetes.io/name": "argocd-repo-server"}, "10.42.3.13"), 8081),
        "argocd-redis": (pod(rendered, "argocd", {"app.kubernetes.io/name": "argocd-redis"}, "10.42.3.14"), 6379),
        "harbor core pod": (pod(rendered, "harbor", {"app": "harbor", "component": "core"}, "10.42.3.15"), 8080),
        "harbor database port": (pod(rendered, "harbor", {"app": "harbor", "component": "core"}, "10.42.3.15"), 5432),
        "eventbus": (dict(EVENTBUS, ip="10.42.2.20"), 4222),
        "argo-events controller": (pod(rendered, "argo-events", {"app": "controller-manager"}, "10.42.3.16"), 7777),
        "a kube-system pod": (pod(rendered, "kube-system", {"k8s-app": "metrics-server"}, "10.42.0.5"), 10250),
        "a service address": ({"ip": "10.43.0.1"}, 443),
        "cloud metadata": (METADATA, 80),
        "kubelet of a node": (API_SERVER, 10250),
        "etcd of a server": (API_SERVER, 2379),
    }
    reachable = [name for name, (dst, port) in internals.items() if sec.egress_allowed(policies, STEP, dst, port)]
    assert reachable == []
    needed = {
        "dns (udp)": (DNS, 53, "UDP"),
        "dns (tcp)": (DNS, 53, "TCP"),
        "s3": (pod(rendered, "object-storage", "s3", "10.42.3.10"), 3900, "TCP"),
        "harbor through traefik": (dict(TRAEFIK, ip="10.42.0.6"), 8443, "TCP"),
        # The Argo executor (wait container) of every step creates and patches its
        # WorkflowTaskResult: argo-workflows v4.1.2 workflow/executor/taskresult.go.
        "api server (executor)": (API_SERVER, 6443, "TCP"),
        "git over https": (GITHUB, 443, "TCP"),
        "git over ssh": (GITHUB, 22, "TCP"),
        "smoke request to serving": (dict(SERVING, ip="10.42.2.15"), 8080, "TCP"),
    }
    refused = [name for name, (dst, port, proto) in needed.items() if not connection_allowed(policies, STEP, dst, port, proto)]
    assert refused == []


def test_other_pipelines_pods_send_only_what_they_need(rendered, policies):
    """EventSources talk to the EventBus (and the git host's API), Sensors to the EventBus
    and the API server (argo-events sensors/triggers/argo-workflow: argo submit), the
    EventBus to itself, the serving pods to S3 (their fetch-model init container)."""
    s3 = pod(rendered, "object-storage", "s3", "10.42.3.10")
    bus = dict(EVENTBUS, ip="10.42.2.20")
    allowed = {
        "eventsource -> eventbus": (EVENTSOURCE, bus, 4222),
        "eventsource -> git host api": (EVENTSOURCE, GITHUB, 443),
        "sensor -> eventbus": (SENSOR, bus, 4222),
        "sensor -> api server": (SENSOR, API_SERVER, 6443),
        "eventbus -> eventbus routes": (EVENTBUS, bus, 6222),
        "serving -> s3": (SERVING, s3, 3900),
    }
    assert [name for name, (src, dst, port) in allowed.items() if not connection_allowed(policies, src, dst, port)] == []
    denied = {
        "eventsource -> api server": (EVENTSOURCE, API_SERVER, 6443),
        "eventsource -> s3": (EVENTSOURCE, s3, 3900),
        "sensor -> internet": (SENSOR, GITHUB, 443),
        "sensor -> s3": (SENSOR, s3, 3900),
        "eventbus -> internet": (EVENTBUS, GITHUB, 443),
        "eventbus -> api server": (EVENTBUS, API_SERVER, 6443),
        "serving -> internet": (SERVING, GITHUB, 443),
        "serving -> api server": (SERVING, API_SERVER, 6443),
        "serving -> postgresql": (SERVING, pod(rendered, "postgresql", "postgresql", "10.42.3.9"), 5432),
        "serving -> cloud metadata": (SERVING, METADATA, 80),
    }
    assert [name for name, (src, dst, port) in denied.items() if sec.egress_allowed(policies, src, dst, port)] == []


def test_api_server_addresses_come_from_the_inventory(repo_root, ansible_env, tmp_path):
    """With servers in the inventory (the lab example), the API server egress goes to their
    addresses only, and the external allow-list keeps the cluster networks and the
    metadata range closed."""
    import subprocess
    from pathlib import Path
    out = tmp_path / "lab"
    cmd = [str(Path(ansible_env["PATH"].split(":")[0]) / "ansible-playbook"), "playbooks/platform.yml", "-i",
           "inventories/lab", "--tags", "namespaces", "-e", "mlops_k8s_sink=render", "-e", f"mlops_render_dir={out}"]
    result = subprocess.run(cmd, cwd=repo_root, env=ansible_env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-4000:]
    lab = [yaml.safe_load(p.read_text()) for p in sorted((out / "platform" / "namespaces").glob("networkpolicy-*.yaml"))]
    servers = yaml.safe_load((repo_root / "inventories" / "lab" / "hosts.yml").read_text())
    servers = servers["all"]["children"]["k3s_cluster"]["children"]["k3s_servers"]["hosts"]
    addresses = [host["ansible_host"] for host in servers.values()]
    for address in addresses:
        assert sec.egress_allowed(lab, STEP, {"ip": address}, 6443)
    assert not sec.egress_allowed(lab, STEP, {"ip": "192.0.2.21"}, 6443)  # an agent: no API server there
    assert not sec.egress_allowed(lab, STEP, {"ip": "10.42.0.9"}, 443)
    assert not sec.egress_allowed(lab, STEP, METADATA, 80)


def test_the_egress_evaluator_can_fail():
    deny = {"metadata": {"namespace": "a"}, "spec": {"podSelector": {}, "policyTypes": ["Egress"]}}
    web = {"metadata": {"namespace": "a"}, "spec": {
        "podSelector": {"matchLabels": {"app": "x"}}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}], "ports": [{"port": 443}]},
                   {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "k"}},
                            "podSelector": {"matchLabels": {"dns": "y"}}}], "ports": [{"port": 53, "protocol": "UDP"}]}]}}
    x = {"namespace": "a", "labels": {"app": "x"}}
    dns = {"namespace": "k", "labels": {"dns": "y"}, "ip": "10.0.0.10"}
    assert sec.egress_allowed([], x, {"ip": "10.1.1.1"}, 5432)
    assert sec.egress_allowed([deny, web], x, {"ip": "1.1.1.1"}, 443)
    assert not sec.egress_allowed([deny, web], x, {"ip": "1.1.1.1"}, 80)
    assert not sec.egress_allowed([deny, web], x, {"ip": "10.1.1.1"}, 443)
    assert not sec.egress_allowed([deny, web], {"namespace": "a", "labels": {}}, {"ip": "1.1.1.1"}, 443)
    assert sec.egress_allowed([deny, web], x, dns, 53, "UDP")
    assert not sec.egress_allowed([deny, web], x, dns, 53, "TCP")
    assert not sec.egress_allowed([deny, web], x, dict(dns, namespace="other"), 53, "UDP")
    assert sec.default_deny_egress([deny, web], "a") and not sec.default_deny_egress([web], "a")


def test_documented_flows_are_allowed(rendered, policies):
    """The flows docs/security.md lists, each one checked against the policies."""
    flows = [
        ("harbor core -> postgresql", {"namespace": "harbor", "labels": {"app": "harbor", "component": "core"}},
         service_pods(rendered, "postgresql", "postgresql"), 5432),
        ("step -> s3", STEP, service_pods(rendered, "object-storage", "s3"), 3900),
        ("argo-server -> s3", {"namespace": "argo", "labels": {"app": "argo-server"}},
         service_pods(rendered, "object-storage", "s3"), 3900),
        ("eventsource -> eventbus", {"namespace": "mlops-pipelines", "labels": {"eventsource-name": "mnist-github"}},
         {"namespace": "mlops-pipelines", "labels": {"controller": "eventbus-controller", "eventbus-name": "default"}}, 4222),
        ("sensor -> eventbus", {"namespace": "mlops-pipelines", "labels": {"sensor-name": "mnist-ci"}},
         {"namespace": "mlops-pipelines", "labels": {"controller": "eventbus-controller", "eventbus-name": "default"}}, 4222),
        ("eventbus -> eventbus (cluster)", {"namespace": "mlops-pipelines",
                                            "labels": {"controller": "eventbus-controller", "eventbus-name": "default"}},
         {"namespace": "mlops-pipelines", "labels": {"controller": "eventbus-controller", "eventbus-name": "default"}}, 6222),
        ("garage setup -> garage admin", {"namespace": "object-storage", "labels": {"job-name": "garage-setup"}},
         service_pods(rendered, "object-storage", "garage-admin"), 3903),
        ("api server -> cert-manager webhook", {"ip": True},
         {"namespace": "cert-manager", "labels": {"app.kubernetes.io/name": "webhook",
                                                  "app.kubernetes.io/component": "webhook"}}, 10250),
        ("cd smoke step -> serving", STEP, {"namespace": "mlops-pipelines", "labels": {"app": "mnist-serving"}}, 8080),
        ("traefik -> github webhook", TRAEFIK,
         {"namespace": "mlops-pipelines", "labels": {"eventsource-name": "mnist-github"}}, 12000),
    ]
    denied = [name for name, src, dst, port in flows if not sec.ingress_allowed(policies, src, dst, port)
              or ("namespace" in src and not sec.egress_allowed(policies, src, dict(dst, ip="10.42.9.9"), port))]
    assert denied == []


def test_the_policy_evaluator_can_fail():
    deny = {"metadata": {"namespace": "a"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    allow = {"metadata": {"namespace": "a"}, "spec": {
        "podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "b"}}}],
                     "ports": [{"port": 5432}]}]}}
    db = {"namespace": "a", "labels": {"app": "db"}}
    assert sec.ingress_allowed([], {"namespace": "c", "labels": {}}, db, 5432)
    assert not sec.ingress_allowed([deny, allow], {"namespace": "c", "labels": {}}, db, 5432)
    assert not sec.ingress_allowed([deny, allow], {"namespace": "b", "labels": {}}, db, 22)
    assert sec.ingress_allowed([deny, allow], {"namespace": "b", "labels": {}}, db, 5432)


# ---------------------------------------------------------------- supply chain
def rendered_images(rendered, platform_registry):
    for obj, spec in sec.pod_templates(rendered):
        for container in sec.containers(spec):
            yield sec.ref(obj), container["image"]
    for obj in objects_of(rendered, "WorkflowTemplate", "Workflow", "CronWorkflow"):
        spec = obj["spec"].get("workflowSpec", obj["spec"])
        for template in spec.get("templates", []):
            for part in ("container", "script"):
                image = template.get(part, {}).get("image")
                # The image the pipeline itself built and pushed to the platform's Harbor,
                # named by the commit it was built from (a Workflow parameter).
                if image and not (image.startswith(platform_registry + "/") and "{{" in image):
                    yield sec.ref(obj), image
    # The EventBus pods' images: the entry of argo-events-controller-config for the
    # EventBus's JetStream version (argo-events pkg/reconciler/eventbus/installer/jetstream.go).
    buses = objects_of(rendered, "EventBus")
    for config in objects_of(rendered, "ConfigMap"):
        if config["metadata"]["name"] == "argo-events-controller-config":
            versions = yaml.safe_load(config["data"]["controller-config.yaml"])["eventBus"]["jetstream"]["versions"]
            for bus in buses:
                entry = next((v for v in versions if str(v["version"]) == str(bus["spec"]["jetstream"]["version"])), None)
                assert entry is not None, f"{sec.ref(bus)}: JetStream version not in the controller's versions"
                for key in ("natsImage", "metricsExporterImage", "configReloaderImage"):
                    yield f"{sec.ref(bus)} {key}", entry[key]


def version_images(versions):
    """Every image pinned in versions.yml (keys ending in _image or _images), with the
    {{ mlops_... }} references of that file resolved."""
    def resolve(text):
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: str(versions[m.group(1)]), text)
    for key, value in versions.items():
        if key.endswith("_image") and isinstance(value, str):
            yield key, resolve(value)
        elif key.endswith("_images") and isinstance(value, dict):
            for name, image in value.items():
                yield f"{key}.{name}", resolve(image)


def test_every_image_is_pinned_by_digest(rendered, versions, platform_defaults, excepted):
    """image:tag@sha256:<64 hex> (tag kept for humans, digest for the runtime), in the
    render and in versions.yml."""
    allowed = excepted.get("image-digest", {})
    registry = platform_defaults["mlops_registry_host"].replace("{{ mlops_domain }}", platform_defaults["mlops_domain"])
    bad, used = set(), set()
    images = {image for _source, image in rendered_images(rendered, registry)}
    images |= {image for _source, image in version_images(versions)}
    for image in images:
        if sec.DIGEST.match(image):
            continue
        if image in allowed:
            used.add(image)
            continue
        bad.add(image)
    assert sorted(bad) == []
    assert_used(excepted, "image-digest", used)


def test_the_digest_check_can_fail():
    assert sec.DIGEST.match("docker.io/library/python:3.13.9-alpine3.22@sha256:" + "a" * 64)
    assert not sec.DIGEST.match("docker.io/library/python:3.13.9-alpine3.22")
    assert not sec.DIGEST.match("docker.io/library/python@sha256:" + "a" * 64)  # tag dropped


# Publishers whose images a step holding credentials may run, by image name prefix: the
# projects' own registries or organisations (or the platform's registry, for what it
# builds itself, added in the test).
OFFICIAL_PUBLISHERS = {
    "quay.io/argoproj/": "the Argo project",
    # kubernetes/kubernetes#116672 "Add an image for kubectl" (pushed from v1.28 on).
    "registry.k8s.io/": "the Kubernetes project",
    "gcr.io/go-containerregistry/": "go-containerregistry (crane)",
    "docker.io/library/": "Docker Official Images",
    "docker.io/amazon/": "Amazon Web Services (aws-cli)",
}
EXECUTOR_ONLY = [{"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]}]


def credential_steps(objects):
    """(template ref, step, image, credentials) of every Workflow(Template) container that
    holds a credential: a Secret as env, envFrom or a mounted volume, or a ServiceAccount
    whose Roles grant more than the Argo executor's own rule."""
    roles = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o.get("rules", [])
             for o in objects if o["kind"] == "Role"}
    powers = {}
    for binding in (o for o in objects if o["kind"] == "RoleBinding"):
        rules = roles.get((binding["metadata"].get("namespace"), binding["roleRef"]["name"]), [])
        for subject in binding.get("subjects") or []:
            if subject["kind"] == "ServiceAccount" and rules != EXECUTOR_ONLY:
                powers.setdefault(subject["name"], []).append(sec.ref(binding))
    for wft in (o for o in objects if o["kind"] in ("WorkflowTemplate", "Workflow")):
        spec = wft["spec"]
        for template in spec.get("templates", []):
            volumes = {v["name"]: v for v in [*spec.get("volumes", []), *template.get("volumes", [])]}
            account = template.get("serviceAccountName", spec.get("serviceAccountName"))
            containers = [template[k] for k in ("container", "script") if k in template]
            containers += template.get("containerSet", {}).get("containers", [])
            for container in containers:
                held = [f"env {e['name']}" for e in container.get("env", []) if "secretKeyRef" in (e.get("valueFrom") or {})]
                held += [f"envFrom {e['secretRef']['name']}" for e in container.get("envFrom", []) if "secretRef" in e]
                held += [f"volume {m['name']}" for m in container.get("volumeMounts", [])
                         if "secret" in volumes.get(m["name"], {})]
                held += [f"ServiceAccount {account} ({', '.join(powers[account])})"] if account in powers else []
                if held:
                    yield sec.ref(wft), f"{template['name']}/{container['name']}", container["image"], held


def credential_images_outside(objects, registry):
    publishers = tuple(OFFICIAL_PUBLISHERS) + (registry + "/",)
    return {image: f"{where} {step}: {held}" for where, step, image, held in credential_steps(objects)
            if not image.startswith(publishers)}


def pipeline_fixtures(repo_root):
    """The pipeline filter tests' inputs (example spec, platform values, pinned images)."""
    import importlib.util
    path = repo_root / "tests" / "unit" / "plugins" / "filter" / "pipeline_fixtures.py"
    module_spec = importlib.util.spec_from_file_location("pipeline_fixtures_for_security", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_credential_holding_steps_use_official_images(rendered, platform_defaults, excepted, repo_root):
    """Steps holding credentials (the push Secret, S3 keys, git credentials, a
    ServiceAccount that can patch the Argo CD Application) run images of their project's
    official publisher or of the platform's registry. Checked on the render and on the
    example pipeline with git credentials over HTTPS and SSH (the render's example repo is
    public). The checkout, which holds the git credentials, runs the Kubernetes project's
    git-sync image: kubernetes/git-sync Dockerfile.in at v4.7.1 stages git, openssh-client,
    coreutils, grep and bash as /bin/sh (what the checkout script calls; the checkout sets
    its own command over ENTRYPOINT /git-sync), and RELEASING.md promotes it to
    registry.k8s.io/git-sync/git-sync."""
    from ansible_collections.researchops.mlops.plugins.filter.pipeline import pipeline_objects
    registry = platform_defaults["mlops_registry_host"].replace("{{ mlops_domain }}", platform_defaults["mlops_domain"])
    objects = [obj for _source, obj in rendered]
    found = credential_images_outside(objects, registry)
    assert [o for o in objects if o["kind"] == "WorkflowTemplate"], "no WorkflowTemplate rendered"
    fixtures = pipeline_fixtures(repo_root)
    example_spec, images, platform = fixtures.example_spec, fixtures.images, fixtures.platform
    for url, secret in (("https://github.com/lab/mnist.git", "mnist-git"), ("git@github.com:lab/mnist.git", "mnist-deploy-key")):
        spec = example_spec()
        spec["repo"].update(url=url, credentials_secret=secret)
        generated = pipeline_objects([spec], platform=platform(), images=images())["mnist"]
        found.update(credential_images_outside(generated, platform()["registry_host"]))
    allowed = excepted.get("credential-image", {})
    assert {image: where for image, where in found.items() if image not in allowed} == {}
    assert_used(excepted, "credential-image", found)


def test_the_credential_image_check_can_fail():
    wft = {"kind": "WorkflowTemplate", "metadata": {"name": "w", "namespace": "p"}, "spec": {
        "serviceAccountName": "ci", "templates": [
            {"name": "a", "container": {"name": "main", "image": "docker.io/someone/tool:1",
                                        "envFrom": [{"secretRef": {"name": "s3"}}]}},
            {"name": "b", "container": {"name": "main", "image": "docker.io/someone/tool:1"}},
            {"name": "c", "serviceAccountName": "cd", "container": {"name": "main", "image": "docker.io/other/kubectl:1"}}]}}
    role = {"kind": "Role", "metadata": {"name": "cd", "namespace": "p"},
            "rules": EXECUTOR_ONLY + [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]}
    binding = {"kind": "RoleBinding", "metadata": {"name": "cd", "namespace": "p"}, "roleRef": {"kind": "Role", "name": "cd"},
               "subjects": [{"kind": "ServiceAccount", "name": "cd", "namespace": "p"}]}
    assert set(credential_images_outside([wft, role, binding], "harbor.x")) == {"docker.io/someone/tool:1", "docker.io/other/kubectl:1"}
    wft["spec"]["templates"][0]["container"]["image"] = "docker.io/amazon/aws-cli:2"
    assert set(credential_images_outside([wft, role], "harbor.x")) == set()


def test_helm_charts_come_from_immutable_sources(rendered, versions, excepted):
    """A chart source is immutable when it is a Git commit (40 hex) or a chart version
    whose archive digest is pinned in versions.yml; never a branch such as master/main."""
    allowed = excepted.get("chart-digest", {})
    bad, used = [], set()
    for app in objects_of(rendered, "Application"):
        if not app["metadata"]["name"] or app["metadata"].get("labels", {}).get("researchops.io/pipeline"):
            continue
        for source in app["spec"].get("sources") or [app["spec"]["source"]]:
            url, revision = source["repoURL"], str(source.get("targetRevision", ""))
            if re.search(r"/(master|main|HEAD)(/|$)", url):
                bad.append(f"{app['metadata']['name']}: {url} is a moving branch")
            if "chart" not in source:
                if not re.fullmatch(r"[0-9a-f]{40}", revision):
                    bad.append(f"{app['metadata']['name']}: Git source at {revision!r}, not a commit")
    for key, chart in versions.items():
        if key.endswith("_chart") and isinstance(chart, dict):
            if re.fullmatch(r"[0-9a-f]{64}", str(chart.get("digest", ""))):
                continue
            if key in allowed:
                used.add(key)
                continue
            bad.append(f"{key}: no sha256 digest of the chart archive")
    assert bad == []
    assert_used(excepted, "chart-digest", used)


def test_platform_applications_have_their_own_project(rendered):
    projects = {p["metadata"]["name"]: p for p in objects_of(rendered, "AppProject")}
    bad = []
    for app in objects_of(rendered, "Application"):
        if app["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "serving":
            continue
        name, project = app["metadata"]["name"], app["spec"]["project"]
        if project == "default" or project not in projects:
            bad.append(f"{name}: project {project!r}")
            continue
        spec = projects[project]["spec"]
        source = app["spec"].get("source", {})
        if source.get("repoURL") not in spec.get("sourceRepos", []):
            bad.append(f"{name}: {source.get('repoURL')} not in {project}'s sourceRepos")
        dest = app["spec"]["destination"]
        if not any(d.get("namespace") == dest["namespace"] and d.get("server") == dest["server"]
                   for d in spec.get("destinations", [])):
            bad.append(f"{name}: destination {dest} not listed in {project}")
        if "*" in spec.get("sourceRepos", []) or any("*" in (d.get("namespace", ""), d.get("server", ""))
                                                     for d in spec.get("destinations", [])):
            bad.append(f"{project}: wildcard source or destination")
    assert bad == []


# ---------------------------------------------------------------- exposure
def test_nothing_is_exposed_beyond_the_ingresses(rendered, excepted):
    allowed = excepted.get("exposure", {})
    bad = [sec.ref(s) for s in objects_of(rendered, "Service") if s["spec"].get("type") in ("NodePort", "LoadBalancer")
           or s["spec"].get("externalIPs")]
    bad += [f"{sec.ref(obj)}: {item}" for obj, spec in sec.pod_templates(rendered) for item in sec.exposure(spec)
            if sec.ref(obj) not in allowed]
    assert bad == []


def test_every_ingress_uses_the_platform_issuer(rendered):
    """The webhook Ingress uses the same ClusterIssuer as the UIs."""
    issuers = {i["metadata"]["annotations"].get("cert-manager.io/cluster-issuer") for i in objects_of(rendered, "Ingress")}
    assert len(issuers) == 1, issuers


def test_exceptions_table_parses(repo_root):
    table = sec.exceptions(repo_root)
    assert set(table) <= {"secret-access", "namespace-level", "pod-security", "image-digest", "chart-digest", "exposure",
                          "credential-image"}
    assert yaml.safe_dump(table)


# ---------------------------------------------------------------- TLS to PostgreSQL
def one(rendered, kind, name, namespace=None):
    found = [o for o in objects_of(rendered, kind) if o["metadata"]["name"] == name
             and (namespace is None or o["metadata"].get("namespace") == namespace)]
    assert len(found) == 1, f"{kind} {namespace}/{name}: {len(found)} rendered"
    return found[0]


def server_args(container):
    """{name: value} of the `-c name=value` arguments of the postgres container."""
    args = container.get("args", [])
    return dict(args[i + 1].split("=", 1) for i in range(len(args) - 1) if args[i] == "-c")


def mounted_file(spec, container, path):
    """(volume, key) providing the file at `path` in `container`: a Secret/ConfigMap item
    (or a key of the whole object) under one of its volumeMounts."""
    for mount in container.get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(prefix):
            volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
            source = volume.get("secret") or volume.get("configMap") or {}
            relative = path[len(prefix):]
            items = source.get("items")
            key = next((i["key"] for i in items if i["path"] == relative), None) if items else relative
            return volume, key, next((i.get("mode") for i in items or [] if i["path"] == relative), None)
    return None, None, None


def test_postgresql_serves_tls_from_the_lab_ca_and_refuses_plain_tcp(rendered):
    """PostgreSQL 17 docs, "Secure TCP/IP Connections with SSL" (ssl, ssl_cert_file,
    ssl_key_file) and "The pg_hba.conf File" (hostssl matches TCP connections with SSL
    only; `host` matches both): with ssl=on and no `host` line for network addresses, a
    client without TLS is refused. The key file: src/backend/libpq/be-secure-common.c
    check_ssl_key_file_permissions refuses a root-owned key with group write/execute or any
    world permission (a Secret volume's files are root-owned)."""
    sts = one(rendered, "StatefulSet", "postgresql", "postgresql")
    spec = sts["spec"]["template"]["spec"]
    container = next(c for c in spec["containers"] if c["name"] == "postgresql")
    settings = server_args(container)
    assert settings.get("ssl") == "on"
    cert_volume, cert_key, _unused = mounted_file(spec, container, settings["ssl_cert_file"])
    key_volume, key_key, key_mode = mounted_file(spec, container, settings["ssl_key_file"])
    assert (cert_key, key_key) == ("tls.crt", "tls.key")
    assert cert_volume["secret"]["secretName"] == key_volume["secret"]["secretName"]
    mode = key_mode if key_mode is not None else key_volume["secret"].get("defaultMode", 0o644)
    assert mode & 0o037 == 0, f"key file mode {oct(mode)}: PostgreSQL refuses it"
    # The certificate: cert-manager, from the lab CA, for the name every client dials.
    certificate = next(c for c in objects_of(rendered, "Certificate")
                       if c["spec"]["secretName"] == key_volume["secret"]["secretName"]
                       and c["metadata"]["namespace"] == "postgresql")
    issuer = one(rendered, "ClusterIssuer", certificate["spec"]["issuerRef"]["name"])
    assert "ca" in issuer["spec"], "the server certificate comes from the lab CA issuer"
    harbor = one(rendered, "Application", "harbor", "argocd")
    values = yaml.safe_load(harbor["spec"]["source"]["helm"]["values"]) if "values" in harbor["spec"]["source"]["helm"] \
        else harbor["spec"]["source"]["helm"]["valuesObject"]
    assert values["database"]["external"]["host"] in certificate["spec"]["dnsNames"]
    # pg_hba.conf: network logins over TLS only.
    hba_volume, hba_key, _unused = mounted_file(spec, container, settings["hba_file"])
    hba = one(rendered, "ConfigMap", hba_volume["configMap"]["name"], "postgresql")["data"][hba_key]
    lines = [line.split() for line in hba.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    plain = [line for line in lines if line[0] in ("host", "hostnossl")
             and line[3] not in ("127.0.0.1/32", "::1/128") and line[-1] != "reject"]
    assert plain == [] and any(line[0] == "hostssl" for line in lines)


def test_postgresql_clients_use_tls(rendered):
    """Harbor: harbor-helm values.yaml database.external.sslmode ("require" - Always SSL
    (skip verification), "verify-ca", "verify-full"). The setup Job: libpq's PGSSLMODE
    verify-full with PGSSLROOTCERT (libpq "Environment Variables", "SSL Support"), the lab
    CA from the certificate's Secret (ca.crt, as cert-manager's CA issuer writes it)."""
    harbor = one(rendered, "Application", "harbor", "argocd")
    helm = harbor["spec"]["source"]["helm"]
    values = yaml.safe_load(helm["values"]) if "values" in helm else helm["valuesObject"]
    assert values["database"]["external"]["sslmode"] in ("require", "verify-ca", "verify-full")
    jobs = [j for j in objects_of(rendered, "Job") if j["metadata"]["name"].startswith("postgresql-setup-")]
    assert len(jobs) == 1
    spec = jobs[0]["spec"]["template"]["spec"]
    container = spec["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PGSSLMODE"] == "verify-full"
    volume, key, _unused = mounted_file(spec, container, env["PGSSLROOTCERT"])
    assert key == "ca.crt" and volume["secret"]["secretName"] == "postgresql-tls"


# ---------------------------------------------------------------- TLS from Traefik to argo-server and argocd-server
# Traefik's Kubernetes Ingress provider (traefik v3.3-v3.7, pkg/provider/kubernetes/ingress):
# annotations.go reads the backend Service's traefik.ingress.kubernetes.io/service.*
# annotations (ServiceIng: serversScheme, serversTransport); kubernetes.go getProtocol
# takes serversScheme, else https for port 443 or a port name starting with "https", else
# http. A ServersTransport of the kubernetesCRD provider is known as
# <namespace>-<name>@kubernetescrd (crd/kubernetes.go makeID, providerName); its
# rootCAsSecrets are read from tls.ca, else ca.crt (getCABlocks).
SCHEME = "traefik.ingress.kubernetes.io/service.serversscheme"
TRANSPORT = "traefik.ingress.kubernetes.io/service.serverstransport"
TLS_SERVERS = {"argo-server": "argo_workflows", "argocd-server": "argocd"}


def traefik_backend(rendered, ingress):
    """(Service, scheme, ServersTransport or None) Traefik uses for the Ingress's backend."""
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    namespace = ingress["metadata"]["namespace"]
    service = one(rendered, "Service", backend["name"], namespace)
    port = next(p for p in service["spec"]["ports"]
                if p["port"] == backend["port"].get("number") or p.get("name") == backend["port"].get("name"))
    annotations = service["metadata"].get("annotations") or {}
    scheme = annotations.get(SCHEME) or ("https" if port["port"] == 443 or port.get("name", "").startswith("https") else "http")
    transports = {f"{t['metadata']['namespace']}-{t['metadata']['name']}@kubernetescrd": t
                  for t in objects_of(rendered, "ServersTransport")}
    return service, scheme, transports.get(annotations.get(TRANSPORT))


def server_certificate(rendered, namespace, secret):
    """The Certificate issuing Secret namespace/secret, and the ClusterIssuer it names."""
    found = [c for c in objects_of(rendered, "Certificate")
             if c["metadata"]["namespace"] == namespace and c["spec"]["secretName"] == secret]
    assert len(found) == 1, f"Secret {namespace}/{secret}: {len(found)} Certificates"
    return found[0], one(rendered, "ClusterIssuer", found[0]["spec"]["issuerRef"]["name"])


def serving_container(rendered, service, name):
    deployment = one(rendered, "Deployment", name, service["metadata"]["namespace"])
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items()), f"Service {name} selects no pod of {name}"
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def test_traefik_reaches_argo_servers_over_tls_it_verifies(rendered):
    """For the Ingress of each server: Traefik dials https, through a ServersTransport of
    the Service's namespace that keeps verification on, names the server
    (serverName among the certificate's names) and trusts the CA in the ca.crt of a
    Secret a cert-manager CA issuer (the lab CA) writes."""
    for name in TLS_SERVERS:
        ingresses = [i for i in objects_of(rendered, "Ingress")
                     if i["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == name]
        assert ingresses, f"no Ingress routes to {name}"
        for ingress in ingresses:
            service, scheme, transport = traefik_backend(rendered, ingress)
            namespace = service["metadata"]["namespace"]
            assert scheme == "https", f"Traefik dials {name} over {scheme}"
            assert transport is not None, f"Service {name}: no ServersTransport named by {TRANSPORT}"
            assert transport["metadata"]["namespace"] == namespace
            spec = transport["spec"]
            assert not spec.get("insecureSkipVerify")
            cas = spec.get("rootCAsSecrets", []) + [r["secret"] for r in spec.get("rootCAs", []) if "secret" in r]
            assert cas, f"ServersTransport {name} trusts no CA"
            for secret in cas:
                certificate, issuer = server_certificate(rendered, namespace, secret)
                assert "ca" in issuer["spec"], f"{secret}: not from a CA issuer, its ca.crt is no CA Traefik can trust"
                assert spec["serverName"] in certificate["spec"]["dnsNames"]


def test_argo_servers_serve_the_certificate_traefik_checks(rendered, platform_defaults):
    """argo-server (Argo Workflows v4.1.2 cmd/argo/commands/server.go: --secure, default
    true; --tls-certificate-secret-name, else a self-signed certificate Traefik refuses)
    and argocd-server (Argo CD v3.5.1 docs/operator-manual/tls.md: Secret
    argocd-server-tls; argocd-cmd-params-cm server.insecure off) serve TLS with the
    certificate whose names the ServersTransport checks; their probes speak HTTPS."""
    namespaces = platform_defaults["mlops_namespaces"]
    for name, key in TLS_SERVERS.items():
        namespace = namespaces[key]
        service = one(rendered, "Service", name, namespace)
        container = serving_container(rendered, service, name)
        args = container.get("args", []) + container.get("command", [])
        if name == "argo-server":
            assert "--secure=false" not in args and "--secure" not in args
            secrets = [a.split("=", 1)[1] for a in args if a.startswith("--tls-certificate-secret-name=")]
            assert len(secrets) == 1, f"argo-server args {args}: no certificate Secret, it serves a self-signed one"
            secret = secrets[0]
        else:
            params = one(rendered, "ConfigMap", "argocd-cmd-params-cm", namespace)["data"]
            assert params.get("server.insecure", "false") != "true" and "--insecure" not in args
            secret = "argocd-server-tls"
        certificate, issuer = server_certificate(rendered, namespace, secret)
        assert "ca" in issuer["spec"]
        transport = one(rendered, "ServersTransport", name, namespace)
        assert transport["spec"]["serverName"] in certificate["spec"]["dnsNames"]
        probes = [container[p]["httpGet"] for p in ("readinessProbe", "livenessProbe") if "httpGet" in container.get(p, {})]
        assert probes and all(p.get("scheme") == "HTTPS" for p in probes), f"{name} probes: {probes}"


def test_no_secret_is_issued_twice(rendered):
    """One writer per certificate Secret: a Certificate or an Ingress's tls (cert-manager's
    ingress-shim makes a Certificate for it). Argo CD reads argocd-server-tls, so the UI
    Ingress must keep its certificate elsewhere."""
    writers = {}
    for cert in objects_of(rendered, "Certificate"):
        writers.setdefault((cert["metadata"]["namespace"], cert["spec"]["secretName"]), []).append(sec.ref(cert))
    for ingress in objects_of(rendered, "Ingress"):
        for tls in ingress["spec"].get("tls", []):
            writers.setdefault((ingress["metadata"]["namespace"], tls["secretName"]), []).append(sec.ref(ingress))
    assert {k: v for k, v in writers.items() if len(v) > 1} == {}


# ---------------------------------------------------------------- Argo Workflows SSO
SSO = {"argo_workflows_sso_enabled": True, "argo_workflows_sso_issuer": "https://accounts.google.com",
       "argo_workflows_sso_client_id": "id.apps.googleusercontent.com", "argo_workflows_sso_client_secret": "s3cr3t-value-9f1",
       "argo_workflows_sso_rbac_rules": [{"name": "ml-team", "role": "submit", "groups": ["ml-team@lab.example.org"]},
                                         {"name": "reviewers", "role": "view", "emails": ["alice@example.org"]}],
       # Argo CD with SSO configured, Harbor with its proxy cache (both off in the default render).
       "argocd_cm": {"oidc.config": "name: Google\nissuer: https://accounts.google.com\nclientID: x\n"},
       "harbor_proxy_cache_enabled": True}


@pytest.fixture(scope="module")
def sso_render(repo_root, ansible_env, tmp_path_factory):
    import json
    import subprocess
    from pathlib import Path
    out = tmp_path_factory.mktemp("sso")
    cmd = [str(Path(ansible_env["PATH"].split(":")[0]) / "ansible-playbook"), "playbooks/platform.yml", "-i",
           "inventories/local", "--tags", "argo_workflows,argocd,harbor", "-e", f"mlops_render_dir={out}", "-e", json.dumps(SSO)]
    result = subprocess.run(cmd, cwd=repo_root, env=ansible_env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-4000:]
    objects = [yaml.safe_load(p.read_text()) for p in sorted((out / "platform").glob("*/*.yaml"))
               if p.name != "kustomization.yaml"]
    return objects, result.stdout


def test_sso_comes_with_argo_sso_rbac_and_an_allow_list(sso_render):
    """Argo Workflows server/auth/gatekeeper.go (rbacAuthorization): with sso.rbac.enabled
    a user acts as the ServiceAccount (argo-server's namespace) whose
    workflows.argoproj.io/rbac-rule matches the ID token claims, highest
    rbac-rule-precedence first, and is refused when none matches; the account's token
    comes from the Secret the ServiceAccount lists."""
    objects, log = sso_render
    config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "workflow-controller-configmap")
    assert yaml.safe_load(config["data"]["sso"])["rbac"] == {"enabled": True}
    accounts = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServiceAccount"
                and "workflows.argoproj.io/rbac-rule" in (o["metadata"].get("annotations") or {})}
    assert set(accounts) == {"argo-sso-ml-team", "argo-sso-reviewers"}
    rules = {name: a["metadata"]["annotations"]["workflows.argoproj.io/rbac-rule"] for name, a in accounts.items()}
    assert rules == {"argo-sso-ml-team": '"ml-team@lab.example.org" in groups',
                     "argo-sso-reviewers": 'email in ["alice@example.org"]'}
    assert all(rule not in ("true", "") for rule in rules.values())  # no catch-all: default is no access
    for name, account in accounts.items():
        assert account["metadata"]["namespace"] == "argo"
        assert account["secrets"] == [{"name": f"{name}.service-account-token"}]
        binding = next(o for o in objects if o["kind"] == "RoleBinding" and o["metadata"]["name"] == name)
        assert binding["metadata"]["namespace"] == "mlops-pipelines"
        assert binding["roleRef"]["kind"] == "Role"
    precedences = sorted(int(a["metadata"]["annotations"]["workflows.argoproj.io/rbac-rule-precedence"])
                         for a in accounts.values())
    assert len(set(precedences)) == 2
    server = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "argo-server")
    assert "--auth-mode=sso" in server["spec"]["template"]["spec"]["containers"][0]["args"]
    assert SSO["argo_workflows_sso_client_secret"] not in log
    assert not [o for o in objects if o["kind"] == "ClusterRoleBinding" and o["metadata"]["name"].startswith("argo-sso")]


def test_argocd_admin_is_off_once_sso_is_configured(sso_render, rendered):
    """Argo CD's util/settings: admin.enabled "false" in argocd-cm disables the built-in
    admin account; the default render (no SSO, no account) keeps it for the first login."""
    def argocd_cm(objects):
        return next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "argocd-cm")["data"]
    assert argocd_cm(sso_render[0]).get("admin.enabled") == "false"
    assert "admin.enabled" not in argocd_cm([obj for _source, obj in rendered])


def test_harbor_proxy_cache_project_is_private(sso_render):
    import json
    job = next(o for o in sso_render[0] if o["kind"] == "Job" and o["metadata"]["name"] == "harbor-setup")
    env = {e["name"]: e.get("value") for c in job["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])}
    config = json.loads(env["HARBOR_SETUP_CONFIG"])
    assert config["proxy_cache"]["project"] == "dockerhub"
    assert "dockerhub" not in config["public_projects"]
