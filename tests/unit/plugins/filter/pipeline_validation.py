"""Strict validation of generated pipeline objects against the pinned upstream schemas,
through the collection's own plugins/module_utils/manifest_validation.py (Argo Workflows
and Argo Events schema.json, the Argo CD CRDs, kubernetes-validate for core kinds)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ansible_collections.researchops.mlops.plugins.module_utils.manifest_validation import Validator

K8S_VERSION = "1.34"


@lru_cache(maxsize=None)
def _validator(upstream):
    upstream = Path(upstream)
    return Validator(
        k8s_version=K8S_VERSION,
        workflows_schema=str(upstream / "argo-workflows/v4.1.2/schema.json"),
        events_schema=str(upstream / "argo-events/v1.9.11/schema.json"),
        crd_files=[str(upstream / "argo-cd/v3.5.1/install.yaml")],
    )


def validate_object(obj, upstream: Path):
    """List of error strings (empty when valid)."""
    return [f"{issue['path']}: {issue['message']}" for issue in _validator(str(upstream)).validate(obj, "pipeline")]


def validate_objects(objects, upstream: Path):
    """Errors of a whole object set, objects emitted twice included."""
    items = [("pipeline", obj) for obj in objects]
    return [str(issue) for issue in _validator(str(upstream)).validate_all(items)]
