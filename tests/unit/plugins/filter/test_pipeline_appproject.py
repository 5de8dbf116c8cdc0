"""The AppProject of the serving Applications (roles/argocd/templates/project.yml.j2)
admits only the kinds serving needs, judged by Argo CD's own rule."""
from __future__ import annotations

import json

import jinja2
import pytest
import yaml

from pipeline_fixtures import REPO_ROOT
from pipeline_validation import validate_object

ROLE = REPO_ROOT / "roles" / "argocd"


def rendered_project():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["to_json"] = json.dumps
    text = env.from_string((ROLE / "templates" / "project.yml.j2").read_text(encoding="utf-8")).render(
        argocd_project_name="mlops",
        __argocd_ns="argocd",
        __argocd_labels={"app.kubernetes.io/part-of": "researchops"},
        argocd_project_source_repos=["https://github.com/researchops-lab/mnist.git"],
        argocd_project_namespace_resources=defaults.get("argocd_project_namespace_resources"),
        mlops_namespaces={"pipelines": "mlops-pipelines"},
    )
    return yaml.safe_load(text)


def permitted(project, group, kind, namespaced):
    """Port of argo-cd v3.5.1 pkg/apis/application/v1alpha1/app_project_types.go
    AppProject.IsGroupKindNamePermitted (names not used by our lists): a nil
    namespaceResourceWhitelist admits every namespaced kind, an empty one none; the cluster
    whitelist must list a kind for it to be admitted."""
    spec = project["spec"]

    def listed(items):
        return any(item["group"] in (group, "*") and item["kind"] in (kind, "*") for item in items)

    if namespaced:
        white = spec.get("namespaceResourceWhitelist")
        black = spec.get("namespaceResourceBlacklist") or []
        return (white is None or (len(white) != 0 and listed(white))) and not (black and listed(black))
    white = spec.get("clusterResourceWhitelist") or []
    black = spec.get("clusterResourceBlacklist") or []
    return bool(white) and listed(white) and not (black and listed(black))


@pytest.mark.parametrize("group, kind", [
    ("apps", "Deployment"), ("", "Service"), ("", "ConfigMap"),
    ("autoscaling", "HorizontalPodAutoscaler"), ("policy", "PodDisruptionBudget"),
])
def test_serving_kinds_are_admitted(group, kind):
    assert permitted(rendered_project(), group, kind, namespaced=True)


@pytest.mark.parametrize("group, kind, namespaced", [
    ("rbac.authorization.k8s.io", "Role", True), ("rbac.authorization.k8s.io", "RoleBinding", True),
    ("", "Secret", True), ("", "ServiceAccount", True), ("", "Pod", True), ("batch", "Job", True),
    ("batch", "CronJob", True), ("apps", "DaemonSet", True), ("apps", "StatefulSet", True),
    ("argoproj.io", "Workflow", True), ("argoproj.io", "Application", True),
    ("networking.k8s.io", "Ingress", True), ("", "PersistentVolumeClaim", True),
    ("rbac.authorization.k8s.io", "ClusterRole", False), ("rbac.authorization.k8s.io", "ClusterRoleBinding", False),
    ("", "Namespace", False), ("apiextensions.k8s.io", "CustomResourceDefinition", False),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration", False),
])
def test_everything_else_is_refused(group, kind, namespaced):
    assert not permitted(rendered_project(), group, kind, namespaced)


def test_project_is_a_valid_appproject(upstream):
    project = rendered_project()
    assert validate_object(project, upstream) == []
    assert project["spec"]["destinations"] == [{"server": "https://kubernetes.default.svc", "namespace": "mlops-pipelines"}]


def test_argument_spec_default_matches_defaults():
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
    options = specs["argument_specs"]["main"]["options"]
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    assert options["argocd_project_namespace_resources"]["default"] == defaults["argocd_project_namespace_resources"]
