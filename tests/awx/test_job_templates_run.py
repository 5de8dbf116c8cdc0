"""Every job template runs the way AWX launches it, through ansible-runner.

AWX (awx ``awx/main/tasks/jobs.py``, ``RunJob.build_args`` / ``build_extra_vars_file`` /
``build_inventory``) runs a job as ansible-runner with: cwd = the project checkout, the
inventory written as an executable script that prints the inventory JSON (hosts and vars
imported by the inventory source, i.e. ``ansible-inventory --list`` of the project's
inventory), the job template's extra vars merged with the survey answers in
``env/extravars``, ``--limit``/``--tags`` from the launch prompts, and each credential
injected by its credential type (awx-plugins ``awx_plugins/interfaces/
_temporary_private_inject_api.py``, ``inject_credential``: files, env vars, and an
``-e @file`` extra-vars file). This test does the same with the job templates
playbooks/awx.yml creates (recorded arguments) and the credential types it defines,
against the render sink (inventories/local: no nodes, every object rendered to files).

What differs from AWX: no EE container (the checkout's collection link stands in for the
collection baked into the EE), no Machine credential (no node is reached), and
MLOPS_UPSTREAM_DIR stands in for the network the EE would download pinned manifests from.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import ansible_runner
import pytest
from awx_helpers import REPO
from awx_plugins.interfaces._temporary_private_api import ManagedCredentialType
from awx_plugins.interfaces._temporary_private_credential_api import Credential
from awx_plugins.interfaces._temporary_private_inject_api import inject_credential

pytestmark = pytest.mark.slow

# Test inputs of the custom credentials (by credential type name).
CREDENTIAL_INPUTS = {
    "ResearchOps kubeconfig": {"kubeconfig": "apiVersion: v1\nkind: Config\nclusters: []\n"},
    "ResearchOps backup key": {"passphrase": "test-backup-passphrase"},
    "ResearchOps Cloudflare API token": {"api_token": "cf-test-token"},
}
# Answers an operator types where a question has no default, or changes from it.
ANSWERS = {"mlops_k8s_sink": "render", "k3s_reset_confirm": "", "backup_restore_confirm": "restore-cluster",
           "node_remove_confirm": "remove-nodes", "node_remove_hosts": "gpu-99"}
ORDER = ["preflight", "nodes", "k3s", "platform", "pipelines", "validate", "site", "backup", "restore",
         "upgrade", "node_add", "node_remove", "reset"]


def survey_answers(jt, tmp):
    answers = {}
    for question in jt["survey_spec"].get("spec", []):
        var = question["variable"]
        if var in ANSWERS:
            answers[var] = ANSWERS[var]
        elif var == "backup_dest":
            answers[var] = str(tmp / "backups")
        elif var == "backup_restore_from":
            answers[var] = str(next((tmp / "backups").glob("researchops-*")))
        elif "default" in question:
            answers[var] = question["default"]
        else:
            pytest.fail(f"no answer for required question {var}")
    return answers


@pytest.fixture(scope="module")
def awx_env(awx_calls, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("awx-jobs")
    types = {c["params"]["name"]: c["params"] for c in awx_calls["calls"] if c["module"] == "credential_type"}
    # The inventory AWX would have imported: ansible-inventory --list of the project's
    # inventory; the lab sets its render folder there.
    inv = json.loads(subprocess.run(
        [str(Path(sys.executable).with_name("ansible-inventory")), "-i", "inventories/local", "--list"],
        cwd=REPO, capture_output=True, text=True, check=True,
        env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))).stdout)
    # AWX stores imported vars as text, so `inventory_dir` would point at its own inventory
    # script: inventories/local (the stand-in here) uses it; the lab inventory must not
    # (test_lab_inventory_survives_the_awx_import).
    text = json.dumps(inv).replace("inventory_dir ~", "'%s' ~" % (REPO / "inventories" / "local"))
    inv = json.loads(text)
    # ansible-inventory --list merges group vars into each host's vars: set the lab's
    # choices there too.
    lab = {"mlops_render_dir": str(tmp / "render"), "backup_dest": str(tmp / "backups")}
    inv["all"].setdefault("vars", {}).update(lab)
    for hostvars in inv["_meta"]["hostvars"].values():
        hostvars.update(lab)
    return {"tmp": tmp, "types": types, "inventory": inv}


def run_job(jt, awx_env):
    tmp = awx_env["tmp"]
    name = jt["name"].split(" | ", 1)[1]
    private = tmp / f"job-{name}"
    (private / "env").mkdir(parents=True)
    (private / "inventory").mkdir()
    script = private / "inventory" / "hosts"
    script.write_text("#!/bin/sh\ncat <<'EOF'\n" + json.dumps(awx_env["inventory"]) + "\nEOF\n")
    script.chmod(0o700)
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "MLOPS_UPSTREAM_DIR": os.environ.get("MLOPS_UPSTREAM_DIR", str(REPO.parent / "shared" / "upstream"))}
    safe_env, args = {}, []
    for cred_name in jt["credentials"]:
        ctype = awx_env["types"].get(cred_name)
        if ctype is None:
            continue  # the Machine credential: no node is reached here
        inject_credential(
            ManagedCredentialType(namespace=None, name=ctype["name"], kind=ctype["kind"], inputs=ctype["inputs"],
                                  injectors=ctype["injectors"]),
            Credential(inputs=CREDENTIAL_INPUTS[ctype["name"]]), env, safe_env, args, str(private),
            container_root=str(private))  # no EE container: /runner is the private data dir itself
    extravars = dict(jt["extra_vars"], **survey_answers(jt, tmp))
    result = ansible_runner.run(private_data_dir=str(private), project_dir=str(REPO), playbook=jt["playbook"],
                                inventory=str(script), extravars=extravars, envvars=env,
                                cmdline=" ".join(args), quiet=True)
    stdout = result.stdout.read()
    return result, stdout, extravars


class Jobs(dict):
    """Each job template launched once, on first use (restore reads what backup wrote;
    validate reads what platform and pipelines rendered)."""

    def __init__(self, job_templates, awx_env):
        super().__init__()
        self.job_templates, self.awx_env = job_templates, awx_env

    def __missing__(self, name):
        for before in {"restore": ["backup"], "validate": ["platform", "pipelines"]}.get(name, []):
            self[before]  # pylint: disable=pointless-statement
        self[name] = run_job(self.job_templates[name], self.awx_env)
        return self[name]


@pytest.fixture(scope="module")
def jobs(job_templates, awx_env):
    return Jobs(job_templates, awx_env)


@pytest.mark.parametrize("name", [n for n in ORDER if n != "node_remove"])
def test_job_template_runs(jobs, name):
    result, stdout, _extravars = jobs[name]
    assert result.status == "successful" and result.rc == 0, stdout[-4000:]


def test_templates_render_the_platform(jobs, awx_env):
    for name in ("platform", "pipelines"):
        assert jobs[name][0].status == "successful", name
    render = awx_env["tmp"] / "render"
    assert (render / "platform" / "argocd").is_dir()
    assert (render / "pipelines").is_dir()


def test_credentials_reach_the_play_not_the_job_vars(jobs):
    """The kubeconfig credential's file injector hands mlops_kubeconfig to the play; the
    secret itself is in neither the job's extra vars nor its output."""
    result, stdout, extravars = jobs["platform"]
    assert "mlops_kubeconfig" not in extravars
    assert "cf-test-token" not in json.dumps(extravars)
    assert "cf-test-token" not in stdout


def test_node_remove_refuses_a_node_not_in_the_inventory(jobs):
    result, stdout, _extravars = jobs["node_remove"]
    assert result.status == "failed"
    assert "Give -e node_remove_hosts=<nodes of k3s_cluster>" in stdout


def test_lab_inventory_survives_the_awx_import():
    """The inventory source imports inventories/lab into AWX's database; values relative to
    the inventory file (inventory_dir) would then resolve against AWX's job folder."""
    for path in (REPO / "inventories" / "lab").rglob("*.yml"):
        assert "inventory_dir" not in path.read_text(), path
