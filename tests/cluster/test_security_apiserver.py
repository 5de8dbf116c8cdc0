"""The security layer's two model checks, asked of a real kube-apiserver instead of our
own code (the cluster layer's control plane, controlplane.py: kube-apiserver v1.36 + etcd
of ../shared/kube-harness; no kubelet):

- Pod Security: every rendered pod template is created as a Pod with a server-side dry
  run in a namespace enforcing `restricted`; the API server's PodSecurity admission
  (k8s.io/pod-security-admission, the code k3s runs) must agree with
  security_checks.restricted_violations on every one, and each template must be
  admitted by the namespace it is rendered into, with that namespace's rendered labels.
- RBAC: the rendered Namespaces, ServiceAccounts, Roles, ClusterRoles and bindings are
  applied, and SubjectAccessReviews (the API server's RBAC authorizer) say which
  ServiceAccount may get/list Secrets or create Pods in a namespace other than its own:
  exactly the subjects of the secret-access exceptions of docs/security.md, nobody else.

The checks and the exceptions table are the render layer's (tests/render/security_checks.py);
the render is the cluster layer's `rendered` fixture. Runs after test_site_apply.py (conftest)."""
from __future__ import annotations

import pytest
import security_checks as sec
import yaml

from .conftest import SCRATCH

pytestmark = pytest.mark.slow


def dry_run_pod(kubectl, namespace, obj, spec):
    spec = dict(spec, automountServiceAccountToken=False)
    # A StatefulSet's claim templates become the pod's volumes (as the StatefulSet
    # controller does: persistentVolumeClaim volumes, allowed at restricted).
    claims = [{"name": t["metadata"]["name"], "persistentVolumeClaim": {"claimName": t["metadata"]["name"]}}
              for t in obj.get("spec", {}).get("volumeClaimTemplates", [])]
    if claims:
        spec["volumes"] = [*spec.get("volumes", []), *claims]
    spec.pop("serviceAccountName", None)
    spec.pop("serviceAccount", None)
    spec.pop("priorityClassName", None)
    spec.pop("runtimeClassName", None)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe", "namespace": namespace}, "spec": spec}
    result = kubectl("create", "--dry-run=server", "-f", "-", input=yaml.safe_dump(pod), check=False)
    return result.returncode == 0, result.stderr.strip()


def test_pod_security_admission_agrees_with_the_checker(kubectl, namespaces, rendered):
    disagreements, refused = [], []
    for obj, spec in sec.pod_templates(rendered):
        admitted, message = dry_run_pod(kubectl, SCRATCH, obj, spec)
        violations = sec.restricted_violations(spec)
        if admitted != (not violations):
            disagreements.append(f"{sec.ref(obj)}: API server {'admits' if admitted else 'refuses'} ({message}); "
                                 f"checker says {violations or 'restricted'}")
        home = obj["metadata"].get("namespace")
        if home in namespaces and home != "kube-system":
            ok, why = dry_run_pod(kubectl, home, obj, spec)
            if not ok:
                refused.append(f"{sec.ref(obj)}: {why}")
    assert disagreements == []
    assert refused == []


def test_the_probe_can_be_refused(kubectl, namespaces):
    spec = {"containers": [{"name": "c", "image": "busybox:1.36", "securityContext": {"privileged": True}}]}
    admitted, message = dry_run_pod(kubectl, SCRATCH, {"kind": "Pod", "metadata": {"name": "x"}}, spec)
    assert not admitted and "PodSecurity" in message


@pytest.fixture(scope="module")
def authorization(control_plane):
    from kubernetes import client, config
    return client.AuthorizationV1Api(config.new_client_from_config(config_file=str(control_plane.kubeconfig)))


def review(authorization, user, groups, namespace, verb, resource):
    sar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
           "spec": {"user": user, "groups": groups,
                    "resourceAttributes": {"namespace": namespace, "verb": verb, "resource": resource}}}
    return bool(authorization.create_subject_access_review(sar).status.allowed)


def test_rbac_secret_reach_matches_the_exceptions(authorization, namespaces, rendered_rbac, rendered, repo_root):
    objects = rendered_rbac
    allowed_bindings = sec.exceptions(repo_root).get("secret-access", {})
    expected = {(s.get("namespace"), s["name"]) for b, s, _scope, _powers in sec.secret_access([o for _source, o in rendered])
                if sec.ref(b) in allowed_bindings}
    accounts = sorted({(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects if o["kind"] == "ServiceAccount"})
    # The SSO-less default render has every account we grant anything to.
    reach = {}
    for ns, name in accounts:
        user = f"system:serviceaccount:{ns}:{name}"
        groups = ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"]
        for other in namespaces:
            if other == ns:
                continue
            powers = [f"{verb} {resource}" for verb, resource in (("get", "secrets"), ("list", "secrets"), ("create", "pods"))
                      if review(authorization, user, groups, other, verb, resource)]
            if powers:
                reach.setdefault((ns, name), []).append(f"{other}: {powers}")
    assert set(reach) - expected == set(), {k: v for k, v in reach.items() if k not in expected}
    # and the people's accounts reach nothing beyond the pipelines namespace
    assert not [k for k in reach if k[1].startswith("argo-ui-")]
