# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Filters of the pipeline generator: pipeline specs in, Kubernetes objects out."""

from __future__ import annotations

DOCUMENTATION = r"""
name: pipeline_objects
short_description: Every Kubernetes object of the CI -> CT -> CD pipelines described by pipeline specs
version_added: 0.1.0
description:
  - Validates each pipeline spec against the JSON schema shipped in the collection
    (C(plugins/module_utils/pipeline/spec_schema.json), documented in C(docs/pipeline-spec.md)),
    fills in its defaults and returns, per pipeline, its ServiceAccounts/Roles/RoleBindings,
    the WorkflowTemplates C(<name>-ci), C(<name>-ct), C(<name>-cd), the EventSources
    C(<name>-github) and C(<name>-workflows), the Sensors C(<name>-ci), C(<name>-ct), C(<name>-cd)
    and the Argo CD Application C(<name>-serving).
  - The output is a pure function of the arguments (no timestamps or random values).
  - Any bad value raises an error naming this filter, the field path (for example
    C(pipelines[0].ct.gpu.count)) and what is allowed.
  - Namespaces, the EventBus, the webhook Secret and the webhook Ingress are not returned
    (the namespaces, argo_events and pipelines roles create them).
options:
  _input:
    description: A list of pipeline specs (C(mlops_pipelines)), or a single spec.
    type: list
    elements: dict
    required: true
  platform:
    description:
      - Platform values, all required strings - C(namespace), C(argocd_namespace),
        C(argocd_project), C(registry_host), C(registry_project), C(registry_cache_project),
        C(registry_push_secret), C(s3_endpoint), C(s3_region), C(s3_credentials_secret),
        C(datasets_bucket), C(models_bucket), C(ca_configmap), C(webhook_host).
    type: dict
    required: true
  images:
    description:
      - Pinned images (versions.yml C(pipelines_images)) - C(git), C(kaniko), C(awscli),
        C(kubectl) - each pinned to a tag other than C(latest) or a digest.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Objects of every pipeline, by pipeline name
  ansible.builtin.set_fact:
    __pipelines_objects: >-
      {{ mlops_pipelines | researchops.mlops.pipeline_objects(platform=__pipelines_platform,
         images=pipelines_images) }}

- name: The spec of the example with its defaults filled in
  ansible.builtin.debug:
    msg: "{{ [lookup('ansible.builtin.file', 'examples/mnist/pipeline.yml') | from_yaml] | researchops.mlops.pipeline_spec }}"
"""

RETURN = r"""
_value:
  description: Mapping of pipeline name to its list of Kubernetes objects, in spec order.
  type: dict
"""

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
