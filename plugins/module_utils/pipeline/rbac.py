# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""One ServiceAccount per role in the pipeline, each bound to a Role holding only the verbs
the code running under it calls (read from the upstream sources; the tests cite them).

- ci, ct: the Argo executor's own needs (workflowtaskresults create/patch:
  argo-workflows workflow/executor/taskresult.go), nothing else: the build and the
  user's training code get no other API access and no Secret.
- cd: the executor's, plus get/list/watch deployments in the pipelines namespace
  (roll-out wait) and, in the Argo CD namespace, get/patch on this pipeline's Application.
- chain: the executor's, plus get/create workflows: the last step of CI (CT) runs
  `kubectl apply` of the next stage's Workflow (a GET, then a CREATE; an unchanged
  object is not patched).
- sensor: create and list workflows, get workflowtemplates (argo-events
  sensors/triggers/argo-workflow/argo-workflow.go runs `argo submit`, which validates the
  workflowTemplateRef, then lists the created Workflow by its labels).
- eventsource: no Role (the webhook EventSource calls no Kubernetes API)."""

from __future__ import annotations

STAGES = ("ci", "ct", "cd", "chain", "sensor", "eventsource")

EXECUTOR_RULE = {
    "apiGroups": ["argoproj.io"],
    "resources": ["workflowtaskresults"],
    "verbs": ["create", "patch"],
}


def _rules(stage):
    if stage in ("ci", "ct"):
        return [EXECUTOR_RULE]
    if stage == "cd":
        return [EXECUTOR_RULE, {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]}]
    if stage == "chain":
        return [EXECUTOR_RULE, {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["get", "create"]}]
    if stage == "sensor":
        return [
            # argo-events ArgoWorkflowTrigger.Execute: `argo submit`, then a LIST by label
            # selector to return the Workflow it created (tests/cluster RBAC test).
            {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create", "list"]},
            {"apiGroups": ["argoproj.io"], "resources": ["workflowtemplates"], "verbs": ["get"]},
        ]
    return []


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
        account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": pipeline.meta(name, stage)}
        rules = _rules(stage)
        if not rules:
            account["automountServiceAccountToken"] = False
        objects.append(account)
        if rules:
            objects += _role_and_binding(pipeline, name, stage, pipeline.namespace, rules)
    objects += _role_and_binding(
        pipeline, pipeline.sa("cd"), "cd", pipeline.platform["argocd_namespace"],
        [{"apiGroups": ["argoproj.io"], "resources": ["applications"],
          "resourceNames": [pipeline.application], "verbs": ["get", "patch"]}],
    )
    return objects
