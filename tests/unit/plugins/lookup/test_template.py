"""researchops.mlops.template: ansible.builtin.template's output without its deep copy of
every variable (plugins/lookup/template.py).

Expectations from ansible-core's own lookup (ansible/plugins/lookup/template.py,
LookupModule.run: `vars = deepcopy(variables)` before templating): the same text for the
same template, options and variables, and the play's variables unchanged after a template
that changes them in place (ansible-core's lazy containers hand templates copies, so the
deep copy is not what protects them)."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

from ansible_collections.researchops.mlops.plugins.lookup import template as template_lookup
from ansible_collections.researchops.mlops.plugins.lookup.template import ShallowCopied

# The folder holding ansible_collections/researchops/mlops as this test imported it: the
# checkout's collections/ link under pytest, ansible-test's copy under `ansible-test units`.
COLLECTIONS_ROOT = Path(template_lookup.__file__).parents[5]

TEMPLATE = """\
{% set _ = mylist.append(9) %}{% set _ = mymap.update({'z': 1}) %}{% set _ = nested.a.append(7) %}
items: {{ mylist | length }} {{ mymap | length }} {{ nested.a | length }} {{ extra | default('none') }}
[# a comment #]<< mylist | length >>
"""

PLAYBOOK = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.set_fact:
        mylist: [1, 2]
        mymap: {a: 1}
        nested: {a: [1]}
    - ansible.builtin.set_fact:
        builtin: "{{ [lookup('ansible.builtin.template', 't.j2'),
                      lookup('ansible.builtin.template', 't.j2', template_vars={'extra': 'x'},
                             variable_start_string='<<', variable_end_string='>>',
                             comment_start_string='[#', comment_end_string='#]')] }}"
        ours: "{{ [lookup('researchops.mlops.template', 't.j2'),
                   lookup('researchops.mlops.template', 't.j2', template_vars={'extra': 'x'},
                          variable_start_string='<<', variable_end_string='>>',
                          comment_start_string='[#', comment_end_string='#]')] }}"
    - ansible.builtin.assert:
        that:
          - ours == builtin
          - "'items: 3 2 2 none' in ours[0]"
          - mylist == [1, 2]
          - "mymap == {'a': 1}"
          - "nested == {'a': [1]}"
        fail_msg: "{{ {'ours': ours, 'builtin': builtin, 'mylist': mylist, 'mymap': mymap, 'nested': nested} | to_json }}"
"""


def test_deepcopy_of_the_variables_is_shallow():
    inner = [1]
    variables = ShallowCopied({"a": inner})
    copied = copy.deepcopy(variables)
    copied["b"] = 2
    assert copied == {"a": [1], "b": 2} and copied["a"] is inner and "b" not in variables


def test_same_output_as_the_builtin_lookup_and_variables_untouched(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "t.j2").write_text(TEMPLATE)
    (tmp_path / "pb.yml").write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_ROOT), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "pb.yml"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
