# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Argo Events objects chaining the stages.

- EventSource <name>-github: GitHub push webhook at https://<webhook host>/<name>,
  every delivery's signature checked against the webhook Secret.
- EventSource <name>-workflows: watches this pipeline's Workflows and emits an event when
  one is marked completed (label workflows.argoproj.io/completed=true).
- Sensors <name>-ci (push -> CI), <name>-ct (CI Succeeded -> CT), <name>-cd (CT Succeeded,
  i.e. gate passed -> CD). Each submits a Workflow from the stage's WorkflowTemplate, so
  every run is an ordinary, labelled Workflow visible in the Argo UI/CLI."""

from __future__ import annotations

import re

from .spec import LABEL_CHAIN, LABEL_PIPELINE, LABEL_STAGE

WEBHOOK_PORT = 12000
COMPLETED_LABEL = "workflows.argoproj.io/completed"


def _go_regex_escape(text):
    return re.sub(r"([.\\+*?\[^\]$(){}=!<>|:\-#/])", r"\\\1", text)


def eventsource_service_name(pipeline):
    """Service the Argo Events controller creates for the webhook EventSource."""
    return f"{pipeline.github_eventsource}-eventsource-svc"


def github_eventsource(pipeline):
    owner, name = pipeline.github_repository()
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "EventSource",
        "metadata": pipeline.meta(pipeline.github_eventsource, "webhook"),
        "spec": {
            "template": {"serviceAccountName": pipeline.sa("eventsource")},
            "service": {"ports": [{"name": "webhook", "port": WEBHOOK_PORT, "targetPort": WEBHOOK_PORT}]},
            "github": {
                "push": {
                    "repositories": [{"owner": owner, "names": [name]}],
                    "events": ["push"],
                    "webhook": {
                        "endpoint": f"/{pipeline.name}",
                        "port": str(WEBHOOK_PORT),
                        "method": "POST",
                        "url": f"https://{pipeline.platform['webhook_host']}",
                    },
                    "webhookSecret": {"name": pipeline.webhook_secret, "key": pipeline.webhook_secret_key},
                    "contentType": "json",
                    "active": True,
                    "insecure": False,
                },
            },
        },
    }


def workflows_eventsource(pipeline):
    def completed(stage):
        return {
            "namespace": pipeline.namespace,
            "group": "argoproj.io",
            "version": "v1alpha1",
            "resource": "workflows",
            # A Workflow enters this label selector once, when the controller marks it
            # completed: the watch reports it as ADD exactly then. afterStart drops the
            # completed Workflows listed again when the EventSource pod restarts.
            "eventTypes": ["ADD"],
            "filter": {
                "afterStart": True,
                "labels": [
                    {"key": LABEL_PIPELINE, "operation": "==", "value": pipeline.name},
                    {"key": LABEL_STAGE, "operation": "==", "value": stage},
                    {"key": COMPLETED_LABEL, "operation": "==", "value": "true"},
                    {"key": LABEL_CHAIN, "operation": "!=", "value": "false"},
                ],
            },
        }

    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "EventSource",
        "metadata": pipeline.meta(pipeline.workflows_eventsource, "chain"),
        "spec": {
            "template": {"serviceAccountName": pipeline.sa("eventsource")},
            "resource": {"ci-completed": completed("ci"), "ct-completed": completed("ct")},
        },
    }


def _output(name):
    return f'body.status.outputs.parameters.#(name=="{name}").value'


def _sensor(pipeline, stage, dependency, filters, parameters):
    """Sensor submitting a Workflow from WorkflowTemplate <name>-<stage>."""
    arguments = [{"name": name, "value": ""} for name, _ in parameters]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Sensor",
        "metadata": pipeline.meta(f"{pipeline.name}-{stage}", stage),
        "spec": {
            "template": {"serviceAccountName": pipeline.sa("sensor")},
            "dependencies": [dict(dependency, filters={"data": filters})],
            "triggers": [{
                "template": {
                    "name": f"submit-{stage}",
                    "argoWorkflow": {
                        "operation": "submit",
                        "source": {"resource": {
                            "apiVersion": "argoproj.io/v1alpha1",
                            "kind": "Workflow",
                            "metadata": {"generateName": f"{pipeline.name}-{stage}-", "namespace": pipeline.namespace},
                            "spec": {
                                "workflowTemplateRef": {"name": pipeline.template(stage)},
                                "arguments": {"parameters": arguments},
                            },
                        }},
                        "parameters": [
                            {"src": {"dependencyName": dependency["name"], "dataKey": key},
                             "dest": f"spec.arguments.parameters.{index}.value"}
                            for index, (_, key) in enumerate(parameters)
                        ],
                    },
                },
                "retryStrategy": {"steps": 3, "duration": "10s"},
            }],
        },
    }


def ci_sensor(pipeline):
    repo = pipeline.spec["repo"]
    refs = [f"^refs/heads/{_go_regex_escape(branch)}$" for branch in repo["branches"]]
    if repo["tags"]:
        refs.append("^refs/tags/.+$")
    return _sensor(
        pipeline, "ci",
        {"name": "push", "eventSourceName": pipeline.github_eventsource, "eventName": "push"},
        [
            {"path": "body.ref", "type": "string", "value": refs},
            # Branch/tag deletions are pushes too; they have nothing to build.
            {"path": "body.deleted", "type": "bool", "value": ["false"]},
        ],
        [("revision", "body.after"), ("ref", "body.ref")],
    )


def ct_sensor(pipeline):
    return _sensor(
        pipeline, "ct",
        {"name": "ci-succeeded", "eventSourceName": pipeline.workflows_eventsource, "eventName": "ci-completed"},
        [{"path": "body.status.phase", "type": "string", "value": ["^Succeeded$"]}],
        [("revision", _output("commit-sha")), ("ref", _output("git-ref"))],
    )


def cd_sensor(pipeline):
    return _sensor(
        pipeline, "cd",
        {"name": "ct-succeeded", "eventSourceName": pipeline.workflows_eventsource, "eventName": "ct-completed"},
        [{"path": "body.status.phase", "type": "string", "value": ["^Succeeded$"]}],
        [("model-version", _output("model-version"))],
    )


def event_objects(pipeline):
    return [
        github_eventsource(pipeline),
        workflows_eventsource(pipeline),
        ci_sensor(pipeline),
        ct_sensor(pipeline),
        cd_sensor(pipeline),
    ]
