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
    return manifest_validation.validator_from_versions(versions, upstream)


def validate_object(obj, upstream: Path):
    """List of error strings (empty when valid)."""
    return [f"{issue['path']}: {issue['message']}" for issue in _validator(str(upstream)).validate(obj, "pipeline")]


def validate_objects(objects, upstream: Path):
    """Errors of a whole object set, objects emitted twice included."""
    items = [("pipeline", obj) for obj in objects]
    return [str(issue) for issue in _validator(str(upstream)).validate_all(items)]
