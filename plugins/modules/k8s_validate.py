#!/usr/bin/python
# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Validate Kubernetes objects (a render tree or a list) strictly against upstream schemas."""

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_validate
short_description: Validate Kubernetes objects strictly against the pinned upstream schemas
version_added: 0.1.0
author: ResearchOps developers (@researchops)
description:
  - Validates every object of a render tree (O(path), all C(*.yaml) files except
    C(kustomization.yaml)) or of O(objects). Read-only; runs where the play runs.
  - Argo Workflows kinds (Workflow, WorkflowTemplate, ClusterWorkflowTemplate,
    CronWorkflow, WorkflowEventBinding) are checked against O(workflows_schema); Argo Events
    kinds (EventSource, Sensor, EventBus) against O(events_schema); other custom resources
    against the C(openAPIV3Schema) of their CRD, from O(crd_files) or from the CRDs among the
    validated objects; Kubernetes kinds against the strict schemas of C(kubernetes-validate)
    for O(k8s_version) (the newest shipped version not newer than it).
  - Strict, so an unknown field is an error. Upstream JSON schemas leave
    C(additionalProperties) open and CRD schemas rely on pruning, so every object schema
    listing properties is closed, except under C(x-kubernetes-preserve-unknown-fields);
    C(x-kubernetes-int-or-string), C(x-kubernetes-embedded-resource) and C(nullable) are
    honoured; custom resources' metadata is checked against ObjectMeta.
  - Also an error, a kind with no schema anywhere (unless in O(allow_kinds)), a namespaced
    object without C(metadata.namespace) (with O(require_namespace)), a cluster-scoped one
    with a namespace, and an object emitted twice.
  - "Fails when there is any error, listing each as C(<file>: <Kind namespace/name
    (apiVersion)>: <JSON path>: <message>)."
options:
  path:
    description: Root of a render tree. One of O(path) and O(objects) is required.
    type: path
  objects:
    description: Objects to validate instead of a tree.
    type: list
    elements: dict
  k8s_version:
    description: Kubernetes version of the cluster (C(v1.34.1+k3s1) and C(1.34) both work).
    type: str
    default: "1.33"
  workflows_schema:
    description: Argo Workflows C(api/jsonschema/schema.json).
    type: path
  events_schema:
    description: Argo Events C(api/jsonschema/schema.json).
    type: path
  crd_files:
    description: YAML files holding CRDs whose schemas validate custom resources (other documents are ignored).
    type: list
    elements: path
    default: []
  allow_kinds:
    description: Kinds (C(Kind) or C(group/Kind), C(core/Kind) for the core group) accepted without a schema.
    type: list
    elements: str
    default: []
  require_namespace:
    description: Namespaced objects must name their namespace.
    type: bool
    default: true
  max_errors:
    description: Errors listed in the failure message (all are returned in RV(errors)).
    type: int
    default: 50
  parse_cache:
    description:
      - Folder where the parsed objects of every file read (the files of O(path) and
        O(crd_files)) are kept as JSON, in C(<parse_cache>/parsed/<sha256>.json), keyed by
        the sha256 of the file's bytes; the layout of the C(researchops.mlops.upstream_manifest)
        lookup's parse cache, so both can share C(mlops_download_cache).
      - Saves parsing unchanged files again (seconds for megabytes of CRD schemas), nothing
        else; every object is validated on every run, and a file whose bytes changed is
        parsed again.
      - Unset, no cache.
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - jsonschema >= 4.18
  - kubernetes-validate
"""

EXAMPLES = r"""
- name: Validate the render tree
  researchops.mlops.k8s_validate:
    path: "{{ mlops_render_dir }}"
    k8s_version: "{{ mlops_k3s_version }}"
    workflows_schema: "{{ mlops_upstream_dir }}/{{ mlops_argo_workflows_schema.path }}"
    events_schema: "{{ mlops_upstream_dir }}/{{ mlops_argo_events_schema.path }}"
    crd_files: "{{ ([mlops_argocd_manifest] + mlops_cert_manager_crds) | map(attribute='path') | map('regex_replace', '^', mlops_upstream_dir ~ '/') }}"
"""

RETURN = r"""
objects:
  description: Number of objects validated.
  returned: always
  type: int
errors:
  description: "Every error, as C(<file>: <object>: <JSON path>: <message>)."
  returned: always
  type: list
  elements: str
schemas:
  description: Number of objects validated by each schema source.
  returned: always
  type: dict
  sample: {"kubernetes 1.34": 120, "argo-workflows schema.json": 3}
notes:
  description: Remarks, such as an older Kubernetes schema version used.
  returned: always
  type: list
  elements: str
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.researchops.mlops.plugins.module_utils import manifest_validation


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path"},
            "objects": {"type": "list", "elements": "dict"},
            "k8s_version": {"type": "str", "default": manifest_validation.DEFAULT_K8S_VERSION},
            "workflows_schema": {"type": "path"},
            "events_schema": {"type": "path"},
            "crd_files": {"type": "list", "elements": "path", "default": []},
            "allow_kinds": {"type": "list", "elements": "str", "default": []},
            "require_namespace": {"type": "bool", "default": True},
            "max_errors": {"type": "int", "default": 50},
            "parse_cache": {"type": "path"},
        },
        required_one_of=[["path", "objects"]],
        mutually_exclusive=[["path", "objects"]],
        supports_check_mode=True,
    )
    if not manifest_validation.HAS_JSONSCHEMA:
        module.fail_json(msg=missing_required_lib("jsonschema"), exception=str(manifest_validation.JSONSCHEMA_IMPORT_ERROR))
    if not manifest_validation.HAS_KUBERNETES_VALIDATE:
        module.fail_json(msg=missing_required_lib("kubernetes-validate"))
    params = module.params
    try:
        validator = manifest_validation.Validator(
            k8s_version=params["k8s_version"],
            workflows_schema=params["workflows_schema"],
            events_schema=params["events_schema"],
            crd_files=params["crd_files"],
            allow_kinds=params["allow_kinds"],
            require_namespace=params["require_namespace"],
            parse_cache=params["parse_cache"],
        )
        if params["path"]:
            items = manifest_validation.load_tree(params["path"], params["parse_cache"])
        else:
            items = [(f"objects[{index}]", obj) for index, obj in enumerate(params["objects"])]
        issues = manifest_validation.Validator.validate_all(validator, items)
    except (OSError, ValueError) as e:
        module.fail_json(msg=f"validation could not run: {e}", exception=traceback.format_exc())
    errors = [str(issue) for issue in issues]
    result = {"objects": len(items), "errors": errors, "schemas": validator.counts, "notes": validator.notes, "changed": False}
    if errors:
        shown = errors[: params["max_errors"]]
        more = f"\n... and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
        module.fail_json(msg=f"{len(errors)} validation error(s) in {len(items)} objects:\n" + "\n".join(shown) + more, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
