"""The in-cluster API client that every Job ships (plugins/module_utils/incluster_client.py),
run against a local HTTP server that answers like the Kubernetes API: 404 with a Status
body for a missing object (k8s.io/apiserver pkg/endpoints/handlers/responsewriters
ErrorNegotiated), the object for a create, and merge patches only with Content-Type
application/merge-patch+json (pkg/endpoints/handlers/patch.go PatchResource, 415 otherwise)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ansible_collections.researchops.mlops.plugins.module_utils import incluster_client
from ansible_collections.researchops.mlops.plugins.module_utils.incluster_client import Client, HttpError, resource_path

TOKEN = "token-from-the-service-account"


class FakeApi(BaseHTTPRequestHandler):
    objects: dict = {}
    seen: list = []

    def log_message(self, *args):
        pass

    def _answer(self, code, body):
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def _authorized(self):
        self.seen.append((self.command, self.path, self.headers.get("Content-Type")))
        if self.headers.get("Authorization") != "Bearer " + TOKEN:
            self._answer(401, {"kind": "Status", "code": 401, "reason": "Unauthorized"})
            return False
        return True

    def do_GET(self):
        if not self._authorized():
            return
        if self.path in self.objects:
            self._answer(200, self.objects[self.path])
        else:
            self._answer(404, {"kind": "Status", "code": 404, "reason": "NotFound"})

    def do_POST(self):
        if not self._authorized():
            return
        body = self._body()
        path = self.path + "/" + body["metadata"]["name"]
        if path in self.objects:
            self._answer(409, {"kind": "Status", "code": 409, "reason": "AlreadyExists"})
            return
        self.objects[path] = body
        self._answer(201, body)

    def do_PATCH(self):
        if not self._authorized():
            return
        if self.headers.get("Content-Type") != "application/merge-patch+json":
            self._answer(415, {"kind": "Status", "code": 415, "reason": "UnsupportedMediaType"})
            return
        if self.path not in self.objects:
            self._answer(404, {"kind": "Status", "code": 404, "reason": "NotFound"})
            return
        self.objects[self.path].setdefault("data", {}).update(self._body()["data"])
        self._answer(200, self.objects[self.path])


@pytest.fixture
def client(tmp_path):
    (tmp_path / "token").write_text(TOKEN + "\n")
    FakeApi.objects, FakeApi.seen = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Client(f"http://127.0.0.1:{server.server_address[1]}/", service_account_dir=str(tmp_path))
    server.shutdown()
    server.server_close()


def test_get_create_patch_round_trip(client):
    path = resource_path("secrets", "ns", "s")
    assert client.get(path) is None
    created = client.create(resource_path("secrets", "ns"), {"kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "MQ=="}})
    assert created["metadata"]["name"] == "s"
    client.merge_patch(path, {"data": {"b": "Mg=="}})
    assert client.get(path)["data"] == {"a": "MQ==", "b": "Mg=="}
    assert ("PATCH", path, "application/merge-patch+json") in FakeApi.seen


def test_errors_other_than_a_missing_get_raise_with_the_status(client):
    with pytest.raises(HttpError, match="PATCH .*/api/v1/namespaces/ns/secrets/gone failed: HTTP 404") as err:
        client.merge_patch(resource_path("secrets", "ns", "gone"), {"data": {}})
    assert err.value.code == 404
    client.create(resource_path("configmaps", "ns"), {"metadata": {"name": "c"}})
    with pytest.raises(HttpError, match="HTTP 409"):
        client.create(resource_path("configmaps", "ns"), {"metadata": {"name": "c"}})


def test_the_token_is_read_from_the_service_account_on_every_call(client, tmp_path):
    (tmp_path / "token").write_text("rotated-and-wrong")
    with pytest.raises(HttpError, match="HTTP 401"):
        client.get(resource_path("secrets", "ns", "s"))


def test_server_comes_from_the_pod_environment(monkeypatch):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.43.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    assert Client().server == "https://10.43.0.1:443"


def test_the_client_needs_only_the_standard_library():
    source = open(incluster_client.__file__, encoding="utf-8").read()
    imports = [line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert set(imports) <= {"__future__", "json", "os", "ssl", "urllib.error", "urllib.request"}


def test_run_ends_an_api_error_with_its_message_and_status_1(client):
    """A Job's pod fails with the message on standard error: SystemExit with a str is
    exit status 1 and the message printed (Python docs, "SystemExit"; the Job's
    backoffLimit retries a failed pod)."""

    def main(path):
        client.merge_patch(path, {"data": {}})

    with pytest.raises(SystemExit) as ended:
        incluster_client.run(main, resource_path("secrets", "ns", "gone"))
    assert isinstance(ended.value.code, str) and "PATCH" in ended.value.code and "HTTP 404" in ended.value.code
    assert isinstance(ended.value.__cause__, HttpError)


def test_run_returns_after_main_and_lets_other_errors_through():
    called = []
    assert incluster_client.run(called.append, "x") is None
    assert called == ["x"]

    def broken():
        raise KeyError("CONFIG")

    with pytest.raises(KeyError):
        incluster_client.run(broken)


@pytest.mark.parametrize("script", [
    "plugins/module_utils/generate_secret.py", "roles/cert_manager/files/ca_export.py", "roles/harbor/files/harbor_setup.py",
    "roles/harbor/files/registry_credentials.py", "roles/object_storage/files/garage_setup.py",
])
def test_every_job_script_ends_through_run(script):
    source = (Path(__file__).resolve().parents[4] / script).read_text(encoding="utf-8")
    main_block = source.split('if __name__ == "__main__":', 1)[1]
    assert main_block.strip().startswith("run(main"), main_block
