"""The cert_manager role's CA export Job script (roles/cert_manager/files/ca_export.py),
run with the in-cluster client it ships with, against a fake API that answers like
kube-apiserver: None (404) for a missing ConfigMap, create only when absent."""
from __future__ import annotations

import base64
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "roles/cert_manager/files/ca_export.py"
CONFIG = {"namespace": "cert-manager", "secret": "researchops-ca", "configmap": "researchops-ca",
          "targets": ["argo", "harbor"], "labels": {"app.kubernetes.io/part-of": "researchops"}}
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


class FakeClient:
    def __init__(self, objects):
        self.objects = objects
        self.writes = []

    def get(self, path):
        return self.objects.get(path)

    def create(self, path, body):
        key = f"{path}/{body['metadata']['name']}"
        assert key not in self.objects
        self.objects[key] = body
        self.writes.append(("create", key))

    def merge_patch(self, path, body):
        self.objects[path].setdefault("data", {}).update(body["data"])
        self.writes.append(("patch", path))


@pytest.fixture
def script(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "plugins/module_utils"))
    spec = importlib.util.spec_from_file_location("ca_export", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def secret_with_ca():
    return {"/api/v1/namespaces/cert-manager/secrets/researchops-ca": {"data": {"ca.crt": base64.b64encode(CA.encode()).decode()}}}


def test_creates_then_keeps_then_repairs(script):
    client = FakeClient(secret_with_ca())
    script.export(client, CONFIG, script.read_ca(client, CONFIG))
    assert client.writes == [("create", "/api/v1/namespaces/argo/configmaps/researchops-ca"),
                             ("create", "/api/v1/namespaces/harbor/configmaps/researchops-ca")]
    assert client.objects["/api/v1/namespaces/harbor/configmaps/researchops-ca"]["data"] == {"ca.crt": CA}
    client.writes.clear()
    script.export(client, CONFIG, CA)
    assert client.writes == []
    client.objects["/api/v1/namespaces/argo/configmaps/researchops-ca"]["data"]["ca.crt"] = "stale"
    script.export(client, CONFIG, CA)
    assert client.writes == [("patch", "/api/v1/namespaces/argo/configmaps/researchops-ca")]


def test_fails_while_the_ca_is_not_issued(script, monkeypatch):
    monkeypatch.setattr(script.time, "sleep", lambda _: None)
    with pytest.raises(SystemExit, match="has no ca.crt yet"):
        script.read_ca(FakeClient({}), CONFIG, attempts=2)
