"""Harbor's registry-credentials Job script (roles/harbor/files/registry_credentials.py),
run with the in-cluster client it ships with against a fake client: the Secret is made
once, from the htpasswd line the htpasswd init container writes, and kept afterwards."""
from __future__ import annotations

import base64
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "roles/harbor/files/registry_credentials.py"
SECRET = "/api/v1/namespaces/harbor/secrets/harbor-registry-credentials"


class FakeClient:
    def __init__(self):
        self.objects = {}

    def get(self, path):
        return self.objects.get(path)

    def create(self, path, body):
        self.objects[f"{path}/{body['metadata']['name']}"] = body


@pytest.fixture
def script(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT / "plugins/module_utils"))
    monkeypatch.setenv("WORK_DIR", str(tmp_path))
    monkeypatch.setenv("REGISTRY_USER", "harbor_registry_user")
    monkeypatch.setenv("SECRET_LABELS", '{"app.kubernetes.io/part-of": "researchops"}')
    spec = importlib.util.spec_from_file_location("registry_credentials", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_creates_the_secret_once(script, tmp_path):
    client = FakeClient()
    script.prepare(client, "harbor", "harbor-registry-credentials")
    password = (tmp_path / "password").read_text()
    assert len(password) == 32 and password.isalnum()
    (tmp_path / "htpasswd").write_text("harbor_registry_user:$2y$05$abcdefghijklmnopqrstuv\n")
    script.store(client, "harbor", "harbor-registry-credentials")
    data = client.objects[SECRET]["data"]
    assert base64.b64decode(data["REGISTRY_PASSWD"]).decode() == password
    assert base64.b64decode(data["REGISTRY_HTPASSWD"]).decode().startswith("harbor_registry_user:$2y$")
    for name in ("password", "htpasswd"):
        (tmp_path / name).unlink()
    script.prepare(client, "harbor", "harbor-registry-credentials")
    assert (tmp_path / "exists").exists() and not (tmp_path / "password").exists()
    script.store(client, "harbor", "harbor-registry-credentials")


def test_refuses_a_line_that_is_not_bcrypt(script, tmp_path):
    client = FakeClient()
    script.prepare(client, "harbor", "harbor-registry-credentials")
    (tmp_path / "htpasswd").write_text("harbor_registry_user:{SHA}xyz\n")
    with pytest.raises(SystemExit, match="bcrypt"):
        script.store(client, "harbor", "harbor-registry-credentials")
    assert SECRET not in client.objects
