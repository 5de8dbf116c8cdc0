#!/usr/bin/python
# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Render sink: write Kubernetes objects as files with kustomization.yaml per folder."""

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_render
short_description: Write Kubernetes objects to a kustomize tree, one file per object
version_added: 0.1.0
author: ResearchOps developers (@researchops)
description:
  - The render half of the researchops sink (role C(researchops.mlops.k8s_sink) with
    C(mlops_k8s_sink=render)).
  - An action plugin of the same name does the work B(on the controller), in the
    Ansible process (no transfer of the object list to a module process); O(dest) is a
    path on the controller whatever the play's hosts and connection.
  - Writes each object of O(objects) to O(dest)/O(phase)/O(component)/ as
    C(<kind>-<namespace>-<name>.yaml) (C(<kind>-<name>.yaml) without a namespace;
    lower-cased, every run of characters other than C([a-z0-9.]) replaced by C(-); the API
    group is added when two kinds of different groups would share a name). Keys are sorted,
    multi-line strings use block style, one object per file.
  - Writes C(kustomization.yaml) in the component folder (its files, sorted), in the phase
    folder (its component folders, sorted) and in O(dest) (phase folders in O(phases)
    order), so C(kubectl kustomize) works on O(dest) and on every folder below it.
  - Deterministic, the same objects give byte-identical files. A file is only written when
    its content changes; YAML files of the component folder that the object list no longer
    holds are removed. C(changed) is true only when a file was written or removed.
  - An object emitted twice (same group, kind, namespace and name) is an error.
options:
  dest:
    description: Root of the render tree (C(mlops_render_dir)).
    type: path
    required: true
  phase:
    description: First folder level (C(cluster), C(platform), C(pipelines)...).
    type: str
    required: true
  component:
    description: Second folder level, one per component role.
    type: str
    required: true
  objects:
    description: The Kubernetes objects.
    type: list
    elements: dict
    required: true
  crds_from:
    description:
      - Pinned upstream manifests (C(versions.yml) entries C({path, url, sha256})) whose
        CustomResourceDefinitions are rendered with O(objects) (as if they came first in
        O(objects), in file order).
      - Read by the action itself through the P(researchops.mlops.upstream_manifest#lookup)
        lookup (same checksum check, same C(mlops_upstream_dir) and download cache, same
        parse cache), so megabytes of CRD schemas never travel through task arguments.
        The sink role passes C(k8s_sink_crds_from) here, as it does to
        M(researchops.mlops.k8s_apply).
      - Only the action plugin reads it; the module, run on its own, fails when it is set.
    type: list
    elements: dict
    default: []
  phases:
    description: Order of the phase folders in the root C(kustomization.yaml); other phases
      come after these, sorted.
    type: list
    elements: str
    default: [preflight, nodes, k3s, cluster, platform, pipelines]
  cache_dir:
    description:
      - Folder of a cache that saves serialising unchanged objects again. For each object
        it keeps the sha256 of its YAML, keyed by the sha256 of its canonical JSON (and of
        the serialiser's code and versions), one small file per object under
        C(<cache_dir>/rendered/). A file whose text has the remembered sha256 is
        unchanged without serialising the object (seconds for the Argo Workflows CRDs).
      - The result, the files, check mode and the diff are the same with or without it;
        every file is still read and compared. Unset, no cache. The sink role passes
        C(mlops_download_cache) (variable C(k8s_sink_cache)).
    type: path
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
notes:
  - Secrets built from vault values are never given to this module (the sink role keeps
    them out of the render).
"""

EXAMPLES = r"""
- name: Render the argocd objects
  researchops.mlops.k8s_render:
    dest: "{{ mlops_render_dir }}"
    phase: platform
    component: argocd
    objects: "{{ __argocd_objects }}"

- name: Render the CRDs of the pinned Argo Workflows manifest (read on the controller, not passed as task arguments)
  researchops.mlops.k8s_render:
    dest: "{{ mlops_render_dir }}"
    phase: platform
    component: argo_workflows_crds
    objects: []
    crds_from: ["{{ mlops_argo_workflows_manifest }}"]
"""

RETURN = r"""
path:
  description: Folder of the component.
  returned: always
  type: str
  sample: /srv/render/platform/argocd
written:
  description: Files written (or, in check mode, that would be), relative to O(dest).
  returned: always
  type: list
  elements: str
  sample: [platform/argocd/deployment-argocd-argocd-server.yaml]
removed:
  description: Stale files removed from the component folder, relative to O(dest).
  returned: always
  type: list
  elements: str
unchanged:
  description: Files already up to date, relative to O(dest).
  returned: always
  type: list
  elements: str
objects:
  description: Number of objects rendered.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.researchops.mlops.plugins.module_utils.k8s_objects import ObjectError
from ansible_collections.researchops.mlops.plugins.module_utils.k8s_render import ARGUMENT_SPEC, render


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    if params["crds_from"]:
        module.fail_json(msg="k8s_render: crds_from is read by the action plugin on the controller, not by the module")
    try:
        result = render(params["dest"], params["phase"], params["component"], params["objects"], module.check_mode, params["phases"], params["cache_dir"])
    except (ObjectError, OSError) as e:
        module.fail_json(msg=f"render of {params['phase']}/{params['component']} failed: {e}")
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
