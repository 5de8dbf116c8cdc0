# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Compose every object of every pipeline from validated specs."""

from __future__ import annotations

from .cd import application, cd_workflow_template
from .ci import ci_workflow_template
from .ct import ct_workflow_template
from .events import event_objects
from .rbac import rbac_objects
from .spec import Pipeline, validate_images, validate_platform, validate_specs


def pipeline_objects(specs, platform, images, prefix="pipelines"):
    """{pipeline name: [objects]} in spec order; raises PipelineSpecError on bad input."""
    platform = validate_platform(platform)
    images = validate_images(images)
    result = {}
    for spec in validate_specs(specs, prefix):
        pipeline = Pipeline(spec, platform, images)
        result[pipeline.name] = (
            rbac_objects(pipeline)
            + [ci_workflow_template(pipeline), ct_workflow_template(pipeline), cd_workflow_template(pipeline)]
            + event_objects(pipeline)
            + [application(pipeline)]
        )
    return result
