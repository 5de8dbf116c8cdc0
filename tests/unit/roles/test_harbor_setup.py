"""Harbor's setup Job script (roles/harbor/files/harbor_setup.py) with the in-cluster client
it ships with: Harbor's API answered by a fake `request` (404 for a HEAD of a missing
project, as Harbor's HeadProject does), Kubernetes by a fake client."""
from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "roles/harbor/files/harbor_setup.py"
CONFIG = {"url": "http://harbor.harbor.svc.cluster.local", "registry_host": "harbor.lab.example", "projects": ["ci"],
          "public_projects": [], "proxy_cache": None, "robot": "ci", "robot_projects": ["ci"], "push_secret": "push",
          "push_secret_namespace": "pipelines", "labels": {"app.kubernetes.io/part-of": "researchops"}}


class FakeClient:
    def __init__(self):
        self.objects, self.calls = {}, []

    def get(self, path):
        return self.objects.get(path)

    def create(self, path, body):
        self.calls.append("create")
        self.objects[f"{path}/{body['metadata']['name']}"] = body

    def merge_patch(self, path, body):
        self.calls.append("patch")
        self.objects[path].update(body)


@pytest.fixture
def script(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "plugins/module_utils"))
    monkeypatch.setenv("HARBOR_SETUP_CONFIG", json.dumps(CONFIG))
    monkeypatch.setenv("HARBOR_ADMIN_PASSWORD", "Secret123")
    spec = importlib.util.spec_from_file_location("harbor_setup", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_project_created_only_when_harbor_says_it_is_missing(script, monkeypatch):
    calls = []

    def request(method, url, body=None, headers=None, context=None, content_type="application/json"):
        calls.append((method, url.split("/api/v2.0")[1]))
        assert headers["Authorization"] == "Basic " + base64.b64encode(b"admin:Secret123").decode()
        if method == "HEAD":
            raise script.HttpError(method, url, 404, "")
        return None

    monkeypatch.setattr(script, "request", request)
    script.ensure_project("ci")
    assert calls == [("HEAD", "/projects?project_name=ci"), ("POST", "/projects")]


def test_push_secret_written_then_patched(script):
    client = FakeClient()
    script.write_push_secret(client, "robot$ci", "s3cret")
    secret = client.objects["/api/v1/namespaces/pipelines/secrets/push"]
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert config["auths"]["harbor.lab.example"]["username"] == "robot$ci"
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    script.write_push_secret(client, "robot$ci", "n3w")
    assert client.calls == ["create", "patch"]
