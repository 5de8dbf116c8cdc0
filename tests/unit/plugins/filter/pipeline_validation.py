"""Strict validation of generated pipeline objects against the pinned upstream schemas.

Local to the pipeline tests until the shared plugins/module_utils/manifest_validation.py
lands. Strict: properties unknown to the schema are errors (upstream schemas leave
additionalProperties open, the API server would prune or reject them)."""
from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

K8S_VERSION = "1.34"
WORKFLOW_KINDS = {"WorkflowTemplate", "Workflow", "CronWorkflow", "ClusterWorkflowTemplate"}
EVENTS_KINDS = {"EventSource", "Sensor", "EventBus"}


def _strict(node):
    """Copy of a JSON schema where every object with `properties` forbids other keys."""
    if isinstance(node, dict):
        node = {key: _strict(value) for key, value in node.items()}
        if "properties" in node and "additionalProperties" not in node and \
                not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_strict(item) for item in node]
    return node


@lru_cache(maxsize=None)
def _definitions(path):
    with open(path, encoding="utf-8") as handle:
        return _strict(json.load(handle))


@lru_cache(maxsize=None)
def _crd_schema(install_yaml, kind):
    with open(install_yaml, encoding="utf-8") as handle:
        for doc in yaml.safe_load_all(handle):
            if doc and doc.get("kind") == "CustomResourceDefinition" and doc["spec"]["names"]["kind"] == kind:
                schema = copy.deepcopy(doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
                return _strict(schema)
    raise LookupError(f"no CRD for {kind} in {install_yaml}")


def _errors(validator):
    def run(obj):
        return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
    return run


def validate_object(obj, upstream: Path):
    """List of error strings (empty when valid)."""
    kind = obj.get("kind")
    if kind in WORKFLOW_KINDS or kind in EVENTS_KINDS:
        if kind in WORKFLOW_KINDS:
            schema_file = upstream / "argo-workflows/v4.1.2/schema.json"
            ref = f"io.argoproj.workflow.v1alpha1.{kind}"
        else:
            schema_file = upstream / "argo-events/v1.9.11/schema.json"
            ref = f"io.argoproj.events.v1alpha1.{kind}"
        schema = _definitions(str(schema_file))
        root = {"$ref": f"#/definitions/{ref}", "definitions": schema["definitions"]}
        return _errors(jsonschema.Draft7Validator(root))(obj)
    if kind in ("Application", "AppProject", "ApplicationSet"):
        schema = _crd_schema(str(upstream / "argo-cd/v3.5.1/install.yaml"), kind)
        errors = _errors(jsonschema.Draft7Validator(schema))(obj)
        for key in ("apiVersion", "kind", "metadata"):
            if key not in obj:
                errors.append(f"{key}: required")
        return errors
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(map(str, exc.path))}: {exc.message}"]
    return []
