"""Checks of the security test layer (test_security.py), as plain functions over rendered
objects so that each one can be fed a hand-made object that must fail.

Where a rule comes from upstream, the docstring names the upstream source it follows."""
from __future__ import annotations

import ipaddress
import re

MANAGED_BY = ("app.kubernetes.io/managed-by", "researchops.mlops")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")
DIGEST = re.compile(r"^(?P<name>[^@\s]+):(?P<tag>[^:@/\s]+)@sha256:[0-9a-f]{64}$")
READ_VERBS = {"get", "list", "watch", "*"}
# Creating one of these runs a pod under a ServiceAccount of the namespace, which can
# mount every Secret there: cluster-wide, that is cluster-wide Secret access.
# (Kubernetes docs, "RBAC good practices", section "Workload creation".)
WORKLOAD_RESOURCES = {
    ("", "pods"), ("apps", "deployments"), ("apps", "statefulsets"), ("apps", "daemonsets"),
    ("apps", "replicasets"), ("batch", "jobs"), ("batch", "cronjobs"), ("", "replicationcontrollers"),
    ("argoproj.io", "workflows"), ("argoproj.io", "cronworkflows"), ("argoproj.io", "sensors"),
    ("argoproj.io", "eventsources"),
}
WRITE_VERBS = {"create", "update", "patch", "*"}


# ---------------------------------------------------------------- exceptions table
def exceptions(repo_root):
    """{check: {object: reason}} from the table under "## Exceptions" of docs/security.md."""
    text = (repo_root / "docs" / "security.md").read_text(encoding="utf-8")
    section = text.split("## Exceptions", 1)[1].split("\n## ", 1)[0]
    table = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) < 3 or cells[0].lower() == "check" or set(cells[0]) <= set("-: "):
            continue
        check, obj, reason = cells[0].strip("`"), cells[1].strip("`"), cells[2]
        assert reason and len(reason) > 20, f"exception {check} {obj} needs a reason"
        table.setdefault(check, {})[obj] = reason
    return table


def is_ours(obj):
    return (obj.get("metadata", {}).get("labels") or {}).get(MANAGED_BY[0]) == MANAGED_BY[1]


def ref(obj):
    meta = obj["metadata"]
    return f"{obj['kind']}/{meta.get('namespace', '')}/{meta['name']}" if meta.get("namespace") \
        else f"{obj['kind']}/{meta['name']}"


# ---------------------------------------------------------------- pods
def pod_spec(obj):
    spec = obj.get("spec") or {}
    kind = obj["kind"]
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    if kind in WORKLOAD_KINDS:
        return spec["template"]["spec"]
    return None


def pod_templates(rendered):
    """(object, pod spec) of every rendered workload."""
    for _source, obj in rendered:
        spec = pod_spec(obj) if obj["kind"] in WORKLOAD_KINDS else None
        if spec is not None:
            yield obj, spec


def containers(spec):
    return [*spec.get("initContainers", []), *spec.get("containers", []), *spec.get("ephemeralContainers", [])]


RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}


def restricted_violations(spec):
    """The Pod Security Standards' `restricted` profile, check by check as
    k8s.io/pod-security-admission/policy implements it (check_privileged.go,
    check_hostNamespaces.go, check_hostPorts.go, check_hostPathVolumes.go,
    check_restrictedVolumes.go, check_capabilities_baseline.go / _restricted.go,
    check_allowPrivilegeEscalation.go, check_runAsNonRoot.go, check_runAsUser.go,
    check_seccompProfile_restricted.go, check_procMount.go, check_sysctls.go)."""
    found = []
    pod_sc = spec.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            found.append(f"{field}: true")
    for volume in spec.get("volumes", []):
        types = set(volume) - {"name"}
        if not types <= RESTRICTED_VOLUMES:
            found.append(f"volume {volume['name']} of type {sorted(types)}")
    for sysctl in pod_sc.get("sysctls", []):
        found.append(f"sysctl {sysctl.get('name')}")
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_seccomp not in (None, "RuntimeDefault", "Localhost"):
        found.append(f"pod seccompProfile {pod_seccomp}")
    if pod_sc.get("runAsUser") == 0:
        found.append("pod runAsUser 0")
    for container in containers(spec):
        name = container["name"]
        sc = container.get("securityContext") or {}
        if sc.get("privileged"):
            found.append(f"{name}: privileged")
        for port in container.get("ports", []):
            if port.get("hostPort"):
                found.append(f"{name}: hostPort {port['hostPort']}")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            found.append(f"{name}: capabilities.drop lacks ALL")
        extra = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        if extra:
            found.append(f"{name}: capabilities.add {sorted(extra)}")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation not false")
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if non_root is not True:
            found.append(f"{name}: runAsNonRoot not true")
        if sc.get("runAsUser") == 0:
            found.append(f"{name}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile not RuntimeDefault/Localhost")
        if sc.get("procMount") not in (None, "Default"):
            found.append(f"{name}: procMount {sc['procMount']}")
    return found


def seccomp_runtime_default(spec):
    """True when every container runs under the RuntimeDefault (or a Localhost) profile."""
    pod = ((spec.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
    return all(((c.get("securityContext") or {}).get("seccompProfile") or {}).get("type", pod)
               in ("RuntimeDefault", "Localhost") for c in containers(spec))


def exposure(spec):
    """Ways a pod is reachable other than through a Service and an Ingress."""
    found = [f"{field}: true" for field in ("hostNetwork",) if spec.get(field)]
    for container in containers(spec):
        found += [f"{container['name']}: hostPort {p['hostPort']}" for p in container.get("ports", []) if p.get("hostPort")]
    return found


# ---------------------------------------------------------------- RBAC
def _rule_grants(rule, group, resource, verbs):
    groups = rule.get("apiGroups") or []
    resources = rule.get("resources") or []
    return ((group in groups or "*" in groups) and (resource in resources or "*" in resources)
            and bool(set(rule.get("verbs") or []) & verbs))


def secret_power(rules):
    """What a rule set gives over Secrets: 'read' (get/list/watch without resourceNames),
    'workloads' (can create pods or what makes pods), or nothing. Follows the
    Kubernetes docs "RBAC good practices": Secret get/list/watch, and workload
    creation, both expose every Secret of the namespace they apply to."""
    powers = set()
    for rule in rules or []:
        if _rule_grants(rule, "", "secrets", READ_VERBS) and not rule.get("resourceNames"):
            powers.add("read")
        if any(_rule_grants(rule, group, resource, WRITE_VERBS) for group, resource in WORKLOAD_RESOURCES):
            powers.add("workloads")
    return powers


def wildcards(rules):
    return [rule for rule in rules or [] if "*" in (rule.get("verbs") or []) or "*" in (rule.get("resources") or [])
            or "*" in (rule.get("apiGroups") or [])]


BUILTIN_CLUSTER_ROLES = {
    "cluster-admin": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    "admin": [{"apiGroups": [""], "resources": ["secrets", "pods"], "verbs": ["get", "list", "watch", "create"]}],
    "edit": [{"apiGroups": [""], "resources": ["secrets", "pods"], "verbs": ["get", "list", "watch", "create"]}],
    "view": [],
}


def secret_access(objects):
    """(binding, subject, scope, powers) for every ServiceAccount subject whose binding
    gives it Secret power beyond its own namespace: a ClusterRoleBinding (scope '*') or a
    RoleBinding in another namespace."""
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o.get("rules", [])
             for o in objects if o["kind"] in ("Role", "ClusterRole")}
    found = []
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        role_ref = binding["roleRef"]
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else "*"
        key = (role_ref["kind"], scope if role_ref["kind"] == "Role" else None, role_ref["name"])
        rules = roles.get(key, BUILTIN_CLUSTER_ROLES.get(role_ref["name"]) if role_ref["kind"] == "ClusterRole" else None)
        if rules is None:
            continue
        powers = secret_power(rules)
        if not powers:
            continue
        for subject in binding.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount" and subject.get("namespace") != scope:
                found.append((binding, subject, scope, powers))
            elif subject.get("kind") in ("User", "Group") and scope == "*":
                found.append((binding, subject, scope, powers))
    return found


# ---------------------------------------------------------------- NetworkPolicies
def _match_labels(selector, labels):
    """metav1.LabelSelector semantics (apimachinery labels.SelectorFromValidatedSet +
    matchExpressions In/NotIn/Exists/DoesNotExist)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _port_ok(rule_ports, port, named):
    if not rule_ports:
        return True
    for item in rule_ports:
        want = item.get("port")
        if want is None or want == port or (named and want == named):
            if item.get("protocol", "TCP") == "TCP":
                return True
        end = item.get("endPort")
        if isinstance(want, int) and end and want <= port <= end:
            return True
    return False


def _peer_selects(peer, policy, pod):
    """A NetworkPolicyPeer with namespaceSelector and/or podSelector picks `pod`
    ({"namespace", "labels"}): no namespaceSelector means the policy's own namespace."""
    ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
    in_ns = _match_labels(ns_sel, {"kubernetes.io/metadata.name": pod["namespace"]}) if ns_sel is not None \
        else pod["namespace"] == policy["metadata"]["namespace"]
    return in_ns and (pod_sel is None or _match_labels(pod_sel, pod["labels"]))


def ingress_allowed(policies, src, dst, port, named_port=None):
    """Whether `src` may open a TCP connection to `dst` on `port`, under the
    NetworkPolicy semantics of the Kubernetes API (networking/v1 NetworkPolicy docs:
    a pod is isolated for ingress once a policy with policyType Ingress selects it;
    then a connection is allowed when one rule of one such policy admits it).
    src/dst: {"namespace": ..., "labels": {...}}; src may also be {"ip": True} for an
    address outside the cluster's pods."""
    selecting = [p for p in policies if p["metadata"]["namespace"] == dst["namespace"]
                 and "Ingress" in (p["spec"].get("policyTypes") or ["Ingress"])
                 and _match_labels(p["spec"].get("podSelector", {}), dst["labels"])]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress") or []:
            if not _port_ok(rule.get("ports"), port, named_port):
                continue
            peers = rule.get("from")
            if not peers:
                return True
            for peer in peers:
                if "ipBlock" in peer:
                    if src.get("ip"):
                        return True
                    continue
                if src.get("ip"):
                    continue
                if _peer_selects(peer, policy, src):
                    return True
    return False


def default_deny_ingress(policies, namespace):
    """A policy of `namespace` selecting every pod for Ingress with no rule."""
    return [p for p in policies if p["metadata"]["namespace"] == namespace and p["spec"].get("podSelector") == {}
            and "Ingress" in (p["spec"].get("policyTypes") or []) and not p["spec"].get("ingress")]


def _port_protocol_ok(rule_ports, port, protocol):
    """NetworkPolicyPort: protocol defaults to TCP; no port matches every port; endPort
    makes a range."""
    if not rule_ports:
        return True
    for item in rule_ports:
        if item.get("protocol", "TCP") != protocol:
            continue
        want, end = item.get("port"), item.get("endPort")
        if want is None or want == port or (isinstance(want, int) and end and want <= port <= end):
            return True
    return False


def _in_block(block, address):
    """IPBlock: `address` inside cidr and in none of its except ranges."""
    if address is None:
        return False
    ip = ipaddress.ip_address(address)
    cidr = ipaddress.ip_network(block["cidr"])
    return ip.version == cidr.version and ip in cidr and not any(
        ip in ipaddress.ip_network(item) for item in block.get("except") or [] if ipaddress.ip_network(item).version == ip.version)


def egress_allowed(policies, src, dst, port, protocol="TCP"):
    """Whether the pod `src` may send to `dst` on `port`, under the egress semantics of the
    NetworkPolicy API (networking/v1 NetworkPolicy docs: a pod is isolated for egress
    once a policy with policyType Egress selects it; policyTypes left out means Egress
    only when the policy has egress rules; then a connection is allowed when one egress
    rule of one such policy admits it: its ports (protocol TCP by default) and one of
    its `to` peers, or any peer when `to` is empty). src: {"namespace", "labels"}; dst: a
    pod {"namespace", "labels", "ip"} (ipBlock peers match its address too, as they do on
    kube-router) or an address outside the cluster {"ip"}."""
    def types(policy):
        declared = policy["spec"].get("policyTypes")
        return declared if declared else (["Ingress", "Egress"] if "egress" in policy["spec"] else ["Ingress"])
    selecting = [p for p in policies if p["metadata"]["namespace"] == src["namespace"] and "Egress" in types(p)
                 and _match_labels(p["spec"].get("podSelector", {}), src["labels"])]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("egress") or []:
            if not _port_protocol_ok(rule.get("ports"), port, protocol):
                continue
            peers = rule.get("to")
            if not peers:
                return True
            for peer in peers:
                if "ipBlock" in peer:
                    if _in_block(peer["ipBlock"], dst.get("ip")):
                        return True
                    continue
                if "namespace" not in dst:
                    continue
                if _peer_selects(peer, policy, dst):
                    return True
    return False


def default_deny_egress(policies, namespace):
    """A policy of `namespace` selecting every pod for Egress with no rule."""
    return [p for p in policies if p["metadata"]["namespace"] == namespace and p["spec"].get("podSelector") == {}
            and "Egress" in (p["spec"].get("policyTypes") or []) and not p["spec"].get("egress")]
