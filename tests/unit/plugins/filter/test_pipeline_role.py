"""The pipelines role refuses an empty webhook secret: argo-events v1.9.11
pkg/eventsources/sources/github/start.go StartListening loads router.hookSecret from the
Secret and parseValidateRequest hands it to go-github's ValidatePayload, which checks no
signature when the secret is empty; any delivery would then start CI."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pipeline_fixtures import REPO_ROOT


def run(ansible_env, tmp_path, secrets):
    cmd = [str(Path(ansible_env["PATH"].split(":")[0]) / "ansible-playbook"), "playbooks/pipelines.yml",
           "-i", "inventories/local", "-e", f"mlops_render_dir={tmp_path}",
           "-e", json.dumps({"pipelines_webhook_secrets": secrets})]
    return subprocess.run(cmd, cwd=REPO_ROOT, env=ansible_env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("value", ["", None])
def test_empty_webhook_secret_is_refused(ansible_env, tmp_path, value):
    result = run(ansible_env, tmp_path, {"mnist": value})
    assert result.returncode != 0
    assert "pipelines_webhook_secrets has an empty value for mnist" in result.stdout


def test_webhook_secret_value_is_accepted_and_never_rendered(ansible_env, tmp_path):
    result = run(ansible_env, tmp_path, {"mnist": "a-webhook-secret-value"})
    assert result.returncode == 0, result.stdout[-3000:]
    rendered = "".join(p.read_text() for p in (tmp_path / "pipelines" / "mnist").glob("*.yaml"))
    assert "kind: WorkflowTemplate" in rendered
    assert "a-webhook-secret-value" not in rendered + result.stdout
