"""playbooks/awx.yml sends what the awx.awx modules accept and what AWX would accept.

No AWX server runs here (README support matrix). Instead the arguments each task sends
are checked against the awx.awx modules' own argument specs: each real module
(``ansible_collections/awx/awx/plugins/modules/<name>.py``, shipped in the ``ansible``
package) is imported and its ``main()`` run until it builds ``ControllerAPIModule``
(``plugins/module_utils/controller_api.py``, ``ControllerModule.__init__`` merges
``AUTH_ARGSPEC`` into the module's spec); that spec and its constraints
(mutually_exclusive, required_if, ...) then validate the recorded arguments with
ansible-core's ``ArgumentSpecValidator``, as AnsibleModule would.

Surveys are checked with the rules of AWX's API (awx ``awx/api/views/__init__.py``,
``JobTemplateSurveySpec._validate_spec_data``, ``ALLOWED_TYPES``), and credentials on job
templates with ``JobTemplateCredentialsList.is_valid_relation`` (one per type; kinds
ssh/vault/cloud/net/kubernetes).
"""
import importlib
import json

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from awx_helpers import AWX_MODULES, CREDENTIALS, REPO

# JobTemplateSurveySpec.ALLOWED_TYPES
SURVEY_TYPES = {"multiplechoice": str, "multiselect": str, "text": str, "textarea": str,
                "password": str, "integer": int, "float": (float, int)}
SECRET_WORDS = ("password", "passphrase", "token", "secret", "kubeconfig")


class _Captured(Exception):
    pass


def awx_spec(name, monkeypatch):
    """(argument_spec, constraints) of the real awx.awx module `name`."""
    module = importlib.import_module(f"ansible_collections.awx.awx.plugins.modules.{name}")
    from ansible_collections.awx.awx.plugins.module_utils.controller_api import ControllerModule

    class Fake:
        def __init__(self, argument_spec=None, **kwargs):
            spec = dict(ControllerModule.AUTH_ARGSPEC)
            spec.update(argument_spec)
            raise _Captured(spec, kwargs)

    for attr in ("ControllerAPIModule", "ControllerAWXKitModule"):
        if hasattr(module, attr):
            monkeypatch.setattr(module, attr, Fake)
    with pytest.raises(_Captured) as captured:
        module.main()
    return captured.value.args


def test_every_module_called(awx_calls):
    called = {c["module"] for c in awx_calls["calls"]}
    assert called == set(AWX_MODULES)


@pytest.mark.parametrize("name", AWX_MODULES)
def test_arguments_match_the_awx_module_spec(awx_calls, name, monkeypatch):
    spec, constraints = awx_spec(name, monkeypatch)
    validator = ArgumentSpecValidator(spec, **{k: v for k, v in constraints.items() if k in (
        "mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by")})
    calls = [c["params"] for c in awx_calls["calls"] if c["module"] == name]
    assert calls
    for params in calls:
        result = validator.validate(params)
        assert not result.error_messages, f"{name} {params.get('name')}: {result.error_messages}"


def test_a_bad_argument_is_refused(monkeypatch):
    """The check can say no: an unknown option and a wrong choice fail the real spec."""
    spec, _constraints = awx_spec("job_template", monkeypatch)
    result = ArgumentSpecValidator(spec).validate({"name": "x", "job_type": "deploy", "playbok": "site.yml"})
    assert any("playbok" in m for m in result.error_messages)
    assert any("job_type" in m for m in result.error_messages)


EXPECTED_TEMPLATES = {"site", "preflight", "nodes", "k3s", "platform", "pipelines", "validate", "upgrade",
                      "reset", "backup", "restore", "node_add", "node_remove"}


def test_a_job_template_for_every_playbook(job_templates):
    assert set(job_templates) == EXPECTED_TEMPLATES
    for jt in job_templates.values():
        assert (REPO / jt["playbook"]).is_file(), jt["playbook"]
        assert jt["ask_limit_on_launch"] and jt["ask_tags_on_launch"]


def _survey_errors(spec):
    """AWX's JobTemplateSurveySpec._validate_spec_data, as data checks."""
    errors = []
    for field, kind in (("name", str), ("description", str), ("spec", list)):
        if not isinstance(spec.get(field), kind):
            errors.append(f"{field} missing or not {kind.__name__}")
    if not spec.get("spec"):
        return errors + ["'spec' doesn't contain any items"]
    seen = set()
    for idx, item in enumerate(spec["spec"]):
        for field in ("type", "question_name", "variable"):
            if not isinstance(item.get(field), str):
                errors.append(f"{idx}: {field} must be a string")
        if not isinstance(item.get("required"), bool):
            errors.append(f"{idx}: required must be a boolean")
        if item.get("variable") in seen:
            errors.append(f"{idx}: variable {item.get('variable')} duplicated")
        seen.add(item.get("variable"))
        qtype = item.get("type")
        if qtype not in SURVEY_TYPES:
            errors.append(f"{idx}: type {qtype} not allowed")
            continue
        if item.get("default", "") != "" and not isinstance(item["default"], SURVEY_TYPES[qtype]):
            errors.append(f"{idx}: default {item['default']!r} is not {qtype}")
        for key in ("min", "max"):
            if item.get(key) is not None and not isinstance(item[key], int):
                errors.append(f"{idx}: {key} must be an integer")
        if qtype in ("multiplechoice", "multiselect"):
            if "choices" not in item:
                errors.append(f"{idx}: {qtype} must specify choices")
            elif "default" in item and item["default"] not in item["choices"]:
                errors.append(f"{idx}: default must be one of the choices")
    return errors


def test_surveys_are_valid_for_awx(job_templates):
    for name, jt in job_templates.items():
        if jt["survey_enabled"]:
            assert _survey_errors(jt["survey_spec"]) == [], name
        else:
            assert jt["survey_spec"] == {}, name


def test_survey_checker_refuses_bad_surveys():
    assert _survey_errors({"name": "x", "description": "", "spec": []})
    bad = {"name": "x", "description": "", "spec": [
        {"type": "multiplechoice", "question_name": "q", "variable": "v", "required": True, "choices": ["a"], "default": "b"},
        {"type": "integer", "question_name": "q", "variable": "v", "required": "yes", "default": "1"}]}
    assert len(_survey_errors(bad)) == 4


def test_operator_surveys(job_templates):
    """Upgrade asks the k3s version (default: the pinned one) and whether to back up
    first; reset and restore ask for a typed confirmation."""
    def variables(name):
        return {q["variable"]: q for q in job_templates[name]["survey_spec"].get("spec", [])}
    upgrade = variables("upgrade")
    assert upgrade["mlops_k3s_version"]["default"].startswith("v1.")
    assert set(upgrade["upgrade_backup"]["choices"]) == {"true", "false"}
    assert variables("reset")["k3s_reset_remove_data"]["default"] == "false"
    assert "k3s_reset_confirm" in variables("reset")
    assert variables("restore")["backup_restore_confirm"]["required"] is True
    assert variables("node_remove")["node_remove_confirm"]["required"] is True


def test_credentials_one_per_type_and_secrets_only_in_credentials(awx_calls, job_templates):
    types = {c["params"]["name"]: c["params"] for c in awx_calls["calls"] if c["module"] == "credential_type"}
    for ctype in types.values():
        assert ctype["kind"] in ("ssh", "vault", "cloud", "net", "kubernetes")
        secret_ids = {f["id"] for f in ctype["inputs"]["fields"] if f.get("secret")}
        assert secret_ids, ctype["name"]
    creds = {c["name"]: c["credential_type"] for c in CREDENTIALS}
    for name, jt in job_templates.items():
        kinds = [creds.get(c, c) for c in jt["credentials"]]
        assert len(kinds) == len(set(kinds)), f"{name}: two credentials of one type"
        # No secret in extra vars or survey defaults: they are stored and shown in plain text.
        visible = json.dumps([jt["extra_vars"], jt["survey_spec"]])
        for cred in CREDENTIALS:
            for value in cred["inputs"].values():
                assert value not in visible
        for question in jt["survey_spec"].get("spec", []):
            assert not any(w in question["variable"] for w in SECRET_WORDS if w != "secret"), question
    assert "correct horse" not in awx_calls["stdout"], "credential inputs were logged"


def test_node_and_cluster_credentials(job_templates):
    assert "ResearchOps SSH" in job_templates["nodes"]["credentials"]
    assert "ResearchOps kubeconfig" in job_templates["platform"]["credentials"]
    assert "ResearchOps kubeconfig" not in job_templates["nodes"]["credentials"]
    assert "ResearchOps backup key" in job_templates["backup"]["credentials"]
    assert "" not in job_templates["pipelines"]["credentials"]  # unset webhook credential left out


def test_s3_keys_reach_the_backup_jobs_through_an_aws_credential(job_templates):
    """backup_s3_* uploads and fetches with the keys in AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY (roles/backup/defaults/main.yml), which AWX's built-in Amazon Web
    Services credential injects (awx/main/models/credential/injectors.py, aws()): the
    templates that take or read a backup carry it, no other template does."""
    with_s3 = {name for name, jt in job_templates.items() if "ResearchOps S3" in jt["credentials"]}
    assert with_s3 == {"backup", "restore", "upgrade"}


def test_workflow_chains_the_phases_with_failure_paths(awx_calls):
    (workflow,) = [c["params"] for c in awx_calls["calls"] if c["module"] == "workflow_job_template"]
    nodes = {n["identifier"]: n for n in workflow["workflow_nodes"]}
    chain, node = [], "nodes"
    while node:
        chain.append(node)
        nxt = nodes[node]["related"]["success_nodes"]
        assert nodes[node]["related"]["failure_nodes"] == [{"identifier": "diagnose"}], node
        node = nxt[0]["identifier"] if nxt else None
    assert chain == ["nodes", "k3s", "platform", "pipelines"]
    templates = {c["params"]["name"] for c in awx_calls["calls"] if c["module"] == "job_template"}
    for node in nodes.values():
        assert node["unified_job_template"]["name"] in templates
    assert nodes["diagnose"]["all_parents_must_converge"] is False
