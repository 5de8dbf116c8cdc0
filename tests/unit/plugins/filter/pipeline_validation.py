"""Strict validation of generated pipeline objects against the pinned upstream schemas,
with the collection's own validator (plugins/module_utils/manifest_validation.py), built
from the same versions.yml entries as the render tests and playbooks/validate.yml."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from ansible_collections.researchops.mlops.plugins.module_utils import manifest_validation

VERSIONS = Path(__file__).resolve().parents[4] / "roles" / "mlops" / "defaults" / "main" / "versions.yml"


@lru_cache(maxsize=None)
def _validator(upstream: str):
    versions = yaml.safe_load(VERSIONS.read_text(encoding="utf-8"))
    root = Path(upstream)
    return manifest_validation.Validator(
        k8s_version=versions.get("mlops_k3s_version", manifest_validation.DEFAULT_K8S_VERSION),
        workflows_schema=str(root / versions["mlops_argo_workflows_schema"]["path"]),
        events_schema=str(root / versions["mlops_argo_events_schema"]["path"]),
        crd_files=[str(root / versions["mlops_argocd_manifest"]["path"])],
    )


def validate_object(obj, upstream: Path):
    """List of error strings (empty when valid)."""
    return [f"{issue['path']}: {issue['message']}" for issue in _validator(str(upstream)).validate(obj)]
