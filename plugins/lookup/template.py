# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""ansible.builtin.template without a deep copy of every variable per call."""

from __future__ import annotations

DOCUMENTATION = r"""
name: template
short_description: Render a template file like ansible.builtin.template, without copying every variable
version_added: 0.1.0
author: ResearchOps developers (@researchops)
description:
  - The P(ansible.builtin.template#lookup) lookup of the running ansible-core, unchanged
    (same search path, same options, same variables, same output), except that the
    variables it hands to the template are a shallow copy of the task's variables instead
    of a deep copy.
  - ansible-core 2.19 deep-copies all variables of the play on each call (every fact and
    every role's object list); in the platform roles that was 0.05-0.3 s per call, over
    20 calls per C(site.yml) run. The copy protects the variables against a template that
    changes them in place; the roles' templates only change lists and mappings they create
    themselves (a list made with C({% set l = [] %}), then appended to), and templating reads variables
    through ansible-core's lazy containers, which copy what they hand out.
  - Use it for the collection's own templates; for other templates
    P(ansible.builtin.template#lookup) stays the safe choice.
options:
  _terms:
    description: Template files, found like ansible.builtin.template finds them (the role's C(templates/) first).
    required: true
  template_vars:
    description: Extra variables for the template (keys become variable names).
    type: dict
    default: {}
  variable_start_string:
    description: Start of a print statement.
    type: str
    default: "{{"
  variable_end_string:
    description: End of a print statement.
    type: str
    default: "}}"
  comment_start_string:
    description: Start of a comment.
    type: str
    default: "{#"
  comment_end_string:
    description: End of a comment.
    type: str
    default: "#}"
  trim_blocks:
    description: Remove the first newline after a block tag.
    type: bool
    default: true
seealso:
  - plugin: ansible.builtin.template
    plugin_type: lookup
"""

EXAMPLES = r"""
# Paths are found as ansible.builtin.template finds them: a role's templates/ folder
# inside a role, else next to the playbook (here, the collection's roles/ folder).
- name: Argo CD repository Secrets from the argocd role's template
  ansible.builtin.set_fact:
    __repository_secrets: >-
      {{ lookup('researchops.mlops.template', 'roles/argocd/templates/repositories.yml.j2',
                template_vars={'__argocd_private': false, '__argocd_ns': 'argocd', '__argocd_labels': {},
                               'argocd_repositories': [{'name': 'charts', 'url': 'https://charts.example.org', 'type': 'helm'}]})
         | from_yaml_all | list }}

- name: The same text as ansible.builtin.template gives
  ansible.builtin.assert:
    that:
      - __repository_secrets | length == 1
      - >-
        lookup('researchops.mlops.template', 'roles/argocd/templates/repositories.yml.j2',
               template_vars={'__argocd_private': false, '__argocd_ns': 'argocd', '__argocd_labels': {}, 'argocd_repositories': []})
        == lookup('ansible.builtin.template', 'roles/argocd/templates/repositories.yml.j2',
                  template_vars={'__argocd_private': false, '__argocd_ns': 'argocd', '__argocd_labels': {}, 'argocd_repositories': []})
"""

RETURN = r"""
_raw:
  description: The rendered text of each template.
  type: list
  elements: raw
"""

from ansible.plugins.lookup.template import LookupModule as BuiltinTemplate


class ShallowCopied(dict):
    """The task's variables: copy.deepcopy of it makes a shallow copy."""

    def __deepcopy__(self, memo):
        return dict(self)


class LookupModule(BuiltinTemplate):
    def run(self, terms, variables=None, **kwargs):
        return super().run(terms, ShallowCopied(variables or {}), **kwargs)
