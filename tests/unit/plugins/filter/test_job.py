"""Unit tests of the job_defaults, creates_secrets and job_scripts filters (the shared
parts of the platform's in-cluster Jobs)."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.researchops.mlops.plugins.filter.job import FilterModule, creates_secrets, job_defaults, job_scripts
from ansible_collections.researchops.mlops.plugins.module_utils import jobs
from ansible_collections.researchops.mlops.plugins.module_utils.k8s_objects import CREATES_SECRETS_ANNOTATION


def test_job_defaults_are_copies_of_the_one_definition():
    pod = job_defaults("pod_security_context")
    assert pod == {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534, "seccompProfile": {"type": "RuntimeDefault"}}
    pod["seccompProfile"]["type"] = "Unconfined"
    assert jobs.POD_SECURITY_CONTEXT["seccompProfile"]["type"] == "RuntimeDefault"
    assert job_defaults("container_security_context")["capabilities"] == {"drop": ["ALL"]}
    assert job_defaults("resources")["limits"] == {"memory": "64Mi"}


def test_creates_secrets_joins_the_references():
    assert creates_secrets(["a/x", "b/y.z"]) == {CREATES_SECRETS_ANNOTATION: "a/x,b/y.z"}


def test_job_scripts_adds_the_client_module():
    data = job_scripts({"setup.py": "import incluster_client\n"})
    assert set(data) == {"setup.py", "incluster_client.py"}
    with open(jobs.CLIENT_PATH, encoding="utf-8") as handle:
        assert data["incluster_client.py"] == handle.read()


@pytest.mark.parametrize("call, message", [
    (lambda: job_defaults("pod"), "job_defaults: unknown part 'pod'"),
    (lambda: creates_secrets("ns/name"), "creates_secrets: expected a non-empty list"),
    (lambda: creates_secrets([]), "creates_secrets: expected a non-empty list"),
    (lambda: creates_secrets(["ns"]), "creates_secrets: item 0 'ns' is not '<namespace>/<name>'"),
    (lambda: job_scripts({}), "job_scripts: expected a non-empty mapping"),
    (lambda: job_scripts({"../x.py": ""}), "job_scripts: '../x.py' is not a plain file name"),
    (lambda: job_scripts({"incluster_client.py": ""}), "job_scripts: 'incluster_client.py' is not a plain file name"),
    (lambda: job_scripts({"x.py": None}), "job_scripts: the source of x.py must be a string"),
])
def test_errors(call, message):
    with pytest.raises(AnsibleFilterError, match=message):
        call()


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"job_defaults", "creates_secrets", "job_scripts"}
