# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Compose every object of every pipeline from validated specs."""

from __future__ import annotations

from .cd import application, cd_workflow_template
from .ci import ci_workflow_template
from .ct import ct_workflow_template
from .events import event_objects
from .rbac import rbac_objects
from .spec import Pipeline, PipelineSpecError, validate_images, validate_platform, validate_specs


def pipeline_objects(specs, platform, images, prefix="pipelines"):
    """{pipeline name: [objects]} in spec order; raises PipelineSpecError on bad input."""
    platform = validate_platform(platform)
    images = validate_images(images)
    result = {}
    platform_secrets = {platform["registry_push_secret"]: "registry_push_secret",
                        platform["s3_credentials_secret"]: "s3_credentials_secret"}
    for index, spec in enumerate(validate_specs(specs, prefix)):
        webhook_secret = spec["webhook"]["secret"]["name"] or f"{spec['name']}-webhook"
        if webhook_secret in platform_secrets:
            raise PipelineSpecError(
                f"{prefix}[{index}].webhook.secret.name",
                f"{webhook_secret!r} is the platform's Secret {platform_secrets[webhook_secret]} "
                "(the pipelines role would overwrite it with the webhook secret)")
        pipeline = Pipeline(spec, platform, images)
        result[pipeline.name] = (
            rbac_objects(pipeline)
            + [ci_workflow_template(pipeline), ct_workflow_template(pipeline), cd_workflow_template(pipeline)]
            + event_objects(pipeline)
            + [application(pipeline)]
        )
    return result
