# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""One ServiceAccount per stage, each bound to a Role holding only the verbs it uses.

- ci, ct: the Argo executor's own needs (workflowtaskresults create/patch), nothing else.
- cd: the same, plus get/list/watch deployments in the pipelines namespace (roll-out
  wait) and, in the Argo CD namespace, get/patch on this pipeline's Application only.
- sensor: create workflows, read workflowtemplates (argo submit validates the reference).
- eventsource: get/list/watch workflows (the completion watch; the webhook needs none)."""

from __future__ import annotations

STAGES = ("ci", "ct", "cd", "sensor", "eventsource")

EXECUTOR_RULE = {
    "apiGroups": ["argoproj.io"],
    "resources": ["workflowtaskresults"],
    "verbs": ["create", "patch"],
}


def _rules(pipeline, stage):
    if stage in ("ci", "ct"):
        return [EXECUTOR_RULE]
    if stage == "cd":
        return [EXECUTOR_RULE, {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]}]
    if stage == "sensor":
        return [
            # argo-events ArgoWorkflowTrigger.Execute: `argo submit`, then a LIST by label
            # selector to return the Workflow it created (tests/cluster RBAC test).
            {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create", "list"]},
            {"apiGroups": ["argoproj.io"], "resources": ["workflowtemplates"], "verbs": ["get", "list"]},
        ]
    return [{"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["get", "list", "watch"]}]


def _role_and_binding(pipeline, name, stage, namespace, rules):
    meta = pipeline.meta(name, stage, namespace)
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": rules},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": pipeline.meta(name, stage, namespace),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": pipeline.sa(stage), "namespace": pipeline.namespace}],
        },
    ]


def rbac_objects(pipeline):
    objects = []
    for stage in STAGES:
        name = pipeline.sa(stage)
        objects.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": pipeline.meta(name, stage)})
        objects += _role_and_binding(pipeline, name, stage, pipeline.namespace, _rules(pipeline, stage))
    objects += _role_and_binding(
        pipeline, pipeline.sa("cd"), "cd", pipeline.platform["argocd_namespace"],
        [{"apiGroups": ["argoproj.io"], "resources": ["applications"],
          "resourceNames": [pipeline.application], "verbs": ["get", "patch"]}],
    )
    return objects
