# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""How the stages are started and chained.

- EventSource <name>-github (or <name>-gitlab): push webhook at
  https://<webhook host>/<name>, every delivery's signature (GitHub) or token (GitLab)
  checked against the webhook Secret.
- Sensor <name>-ci: a push to a watched branch or tag submits a Workflow from
  WorkflowTemplate <name>-ci (at-least-once trigger with retries).
- CI -> CT and CT -> CD are not events: the last step of a successful CI (CT) Workflow
  creates the CT (CD) Workflow itself (`next_stage_template`), under a name derived from
  its own Workflow's name. The workflow controller persists every step's state in the
  Workflow object, so a stage completion survives any pod or controller restart (it is
  never an event that can be missed), and `kubectl apply` of a fixed name creates the next
  Workflow at most once however often the step is retried: exactly once in all.
"""

from __future__ import annotations

import json
import re

from .security import container_security, pod_security

WEBHOOK_PORT = 12000
# Workflow parameter that turns the chaining off for a manual re-run of one stage.
CHAIN_PARAMETER = "chain"


def _go_regex_escape(text):
    return re.sub(r"([.\\+*?\[^\]$(){}=!<>|:\-#/])", r"\\\1", text)


def glob_to_regex(pattern):
    """Branch glob -> anchored Go (RE2) regex: `*` any characters but '/', `**` anything."""
    parts = re.split(r"(\*\*|\*)", pattern)
    out = []
    for part in parts:
        if part == "**":
            out.append(".*")
        elif part == "*":
            out.append("[^/]*")
        else:
            out.append(_go_regex_escape(part))
    return "".join(out)


def pod_template(pipeline, account):
    """Pod template of an EventSource or Sensor: its ServiceAccount, restricted security."""
    return {"serviceAccountName": pipeline.sa(account), "securityContext": pod_security(),
            "container": {"securityContext": container_security()}}


def eventsource_service_name(pipeline):
    """Service the Argo Events controller creates for the webhook EventSource."""
    return f"{pipeline.webhook_eventsource}-eventsource-svc"


def _webhook_context(pipeline):
    return {
        "endpoint": f"/{pipeline.name}",
        "port": str(WEBHOOK_PORT),
        "method": "POST",
        "url": f"https://{pipeline.platform['webhook_host']}",
    }


def gitlab_eventsource(pipeline):
    """argo-events v1.9.11 pkg/eventsources/sources/gitlab/start.go: the X-Gitlab-Token is
    compared with secretToken only when the source creates the project hook itself
    (NeedToCreateHooks: accessToken and webhook.url set), so both are always set."""
    owner, name = pipeline.github_repository()
    gitlab = pipeline.spec["webhook"]["gitlab"]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "EventSource",
        "metadata": pipeline.meta(pipeline.webhook_eventsource, "webhook"),
        "spec": {
            "template": pod_template(pipeline, "eventsource"),
            "service": {"ports": [{"name": "webhook", "port": WEBHOOK_PORT, "targetPort": WEBHOOK_PORT}]},
            "gitlab": {
                "push": {
                    "projects": [f"{owner}/{name}"],
                    "events": ["PushEvents", "TagPushEvents"],
                    "webhook": _webhook_context(pipeline),
                    "accessToken": {"name": gitlab["access_token"]["name"], "key": gitlab["access_token"]["key"]},
                    "secretToken": {"name": pipeline.webhook_secret, "key": pipeline.webhook_secret_key},
                    "enableSSLVerification": True,
                    "gitlabBaseURL": gitlab["base_url"].rstrip("/"),
                    "deleteHookOnFinish": False,
                },
            },
        },
    }


def webhook_eventsource(pipeline):
    return gitlab_eventsource(pipeline) if pipeline.provider == "gitlab" else github_eventsource(pipeline)


def github_eventsource(pipeline):
    owner, name = pipeline.github_repository()
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "EventSource",
        "metadata": pipeline.meta(pipeline.webhook_eventsource, "webhook"),
        "spec": {
            "template": pod_template(pipeline, "eventsource"),
            "service": {"ports": [{"name": "webhook", "port": WEBHOOK_PORT, "targetPort": WEBHOOK_PORT}]},
            "github": {
                "push": {
                    "repositories": [{"owner": owner, "names": [name]}],
                    "events": ["push"],
                    "webhook": _webhook_context(pipeline),
                    "webhookSecret": {"name": pipeline.webhook_secret, "key": pipeline.webhook_secret_key},
                    "contentType": "json",
                    "active": True,
                    "insecure": False,
                },
            },
        },
    }


def ref_patterns(pipeline):
    """Anchored regexes of the git refs whose pushes start CI."""
    repo = pipeline.spec["repo"]
    refs = [f"^refs/heads/{glob_to_regex(branch)}$" for branch in repo["branches"]]
    if repo["tags"]:
        refs.append("^refs/tags/.+$")
    return refs


def ci_sensor(pipeline):
    dependency = {"name": "push", "eventSourceName": pipeline.webhook_eventsource, "eventName": "push"}
    if pipeline.provider == "gitlab":
        # GitLab marks a deleted branch or tag by an all-zero `after`.
        gone = {"path": "body.after", "type": "string", "comparator": "!=", "value": ["^0{40}$"]}
    else:
        gone = {"path": "body.deleted", "type": "bool", "value": ["false"]}
    parameters = [("revision", "body.after"), ("ref", "body.ref")]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Sensor",
        "metadata": pipeline.meta(f"{pipeline.name}-ci", "ci"),
        "spec": {
            "template": pod_template(pipeline, "sensor"),
            "dependencies": [dict(dependency, filters={"data": [
                {"path": "body.ref", "type": "string", "value": ref_patterns(pipeline)},
                # Branch/tag deletions are pushes too; they have nothing to build.
                gone,
            ]})],
            "triggers": [{
                "template": {
                    "name": "submit-ci",
                    "argoWorkflow": {
                        "operation": "submit",
                        "source": {"resource": {
                            "apiVersion": "argoproj.io/v1alpha1",
                            "kind": "Workflow",
                            "metadata": {"generateName": f"{pipeline.name}-ci-", "namespace": pipeline.namespace},
                            "spec": {
                                "workflowTemplateRef": {"name": pipeline.template("ci")},
                                "arguments": {"parameters": [{"name": name, "value": ""} for name, _key in parameters]},
                            },
                        }},
                        "parameters": [
                            {"src": {"dependencyName": "push", "dataKey": key},
                             "dest": f"spec.arguments.parameters.{index}.value"}
                            for index, (_name, key) in enumerate(parameters)
                        ],
                    },
                },
                # The event is acknowledged on the EventBus only after the trigger
                # succeeded (or its retries ran out): a Sensor pod restart mid-trigger
                # redelivers the push instead of losing it.
                "atLeastOnce": True,
                "retryStrategy": {"steps": 5, "duration": "10s"},
            }],
        },
    }


def next_stage_name(stage):
    """Name of the Workflow a stage's last step creates: its own name + '-' + next stage."""
    return "{{workflow.name}}-" + stage


def next_stage_template(pipeline, stage, parameters):
    """Resource template creating the Workflow of `stage` from its WorkflowTemplate.

    `parameters`: names of the new Workflow's arguments, passed to this template as inputs
    (values checked by the checkout step: plain ref names, hex SHAs). kubectl apply of a fixed name is idempotent: a retry
    after a lost answer finds the Workflow and leaves it unchanged."""
    manifest = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": next_stage_name(stage),
            "namespace": pipeline.namespace,
            "labels": dict(pipeline.labels(stage), **{"researchops.io/parent": "{{workflow.name}}"}),
        },
        "spec": {
            "workflowTemplateRef": {"name": pipeline.template(stage)},
            "arguments": {"parameters": [
                {"name": name, "value": f"{{{{inputs.parameters.{name}}}}}"} for name in parameters]},
        },
    }
    return {
        "name": f"start-{stage}",
        "inputs": {"parameters": [{"name": name} for name in parameters]},
        "serviceAccountName": pipeline.sa("chain"),
        "retryStrategy": {"limit": 5, "retryPolicy": "Always",
                          "backoff": {"duration": "10s", "factor": 2, "maxDuration": "10m"}},
        "resource": {"action": "apply", "manifest": json.dumps(manifest, sort_keys=True, indent=2)},
        "outputs": {"parameters": [{"name": "workflow", "valueFrom": {"jsonPath": "{.metadata.name}"}}]},
    }


def chain_step(stage, arguments):
    """Steps entry running next_stage_template unless the run was started with chain=false.

    `arguments`: [(name, Argo expression)] for the template's inputs."""
    return [{"name": f"start-{stage}", "template": f"start-{stage}",
             "arguments": {"parameters": [{"name": name, "value": value} for name, value in arguments]},
             "when": f"{{{{workflow.parameters.{CHAIN_PARAMETER}}}}} == true"}]


def chain_parameter():
    return {"name": CHAIN_PARAMETER, "value": "true", "enum": ["true", "false"],
            "description": "Start the next stage when this one succeeds ('false': run this stage only)."}


def event_objects(pipeline):
    return [webhook_eventsource(pipeline), ci_sensor(pipeline)]
