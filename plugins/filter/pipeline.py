# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Filters of the pipeline generator: pipeline specs in, Kubernetes objects out."""

from __future__ import annotations

# Documentation of both filters: pipeline_objects.yml and pipeline_spec.yml beside this file.
from ansible.errors import AnsibleFilterError

try:
    from ansible_collections.researchops.mlops.plugins.module_utils.pipeline.objects import pipeline_objects as _objects
    from ansible_collections.researchops.mlops.plugins.module_utils.pipeline.spec import (
        PipelineSpecError,
        validate_specs,
    )
except ImportError as imp_exc:  # jsonschema is imported lazily; this is a broken install
    IMPORT_ERROR = imp_exc
else:
    IMPORT_ERROR = None


def _check_import(name):
    if IMPORT_ERROR is not None:
        raise AnsibleFilterError(f"{name}: cannot load the pipeline generator: {IMPORT_ERROR}")


def pipeline_objects(specs, platform=None, images=None):
    """{pipeline name: [objects]} for the pipeline specs."""
    _check_import("pipeline_objects")
    if platform is None or images is None:
        raise AnsibleFilterError("pipeline_objects: the platform= and images= arguments are required")
    try:
        return _objects(specs, platform, images)
    except PipelineSpecError as exc:
        raise AnsibleFilterError(f"pipeline_objects: {exc.path}: {exc.message}") from exc


def pipeline_spec(specs):
    """The pipeline specs, validated, with every default filled in."""
    _check_import("pipeline_spec")
    try:
        return validate_specs(specs)
    except PipelineSpecError as exc:
        raise AnsibleFilterError(f"pipeline_spec: {exc.path}: {exc.message}") from exc


class FilterModule:
    def filters(self):
        return {"pipeline_objects": pipeline_objects, "pipeline_spec": pipeline_spec}
