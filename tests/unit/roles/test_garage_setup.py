"""The object_storage role's setup Job script (roles/object_storage/files/garage_setup.py),
run for real against an in-memory Kubernetes Secrets API and a fake Garage admin API
(HTTP server on localhost implementing the v2 operations the script uses, with Garage's
own key-format checks)."""
from __future__ import annotations

import base64
import copy
import importlib.util
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "roles/object_storage/files/garage_setup.py"
# The Job mounts the script beside incluster_client.py (filter job_scripts).
MODULE_UTILS = Path(__file__).resolve().parents[3] / "plugins/module_utils"
TOKEN = "a" * 64


class FakeGarage:
    """State of a one-node Garage cluster and the operations the script may call."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.layout = {"version": 0, "roles": [], "stagedRoleChanges": [], "parameters": {"zoneRedundancy": "maximum"}}
        self.keys = {}
        self.buckets = {}
        self.calls = []

    def handle(self, method, operation, query, body):
        self.calls.append((method, operation))
        if operation == "GetClusterStatus":
            return 200, {"layoutVersion": self.layout["version"], "nodes": self.nodes}
        if operation == "GetClusterLayout":
            return 200, self.layout
        if operation == "UpdateClusterLayout":
            self.layout["stagedRoleChanges"] += body["roles"]
            return 200, self.layout
        if operation == "ApplyClusterLayout":
            if body["version"] != self.layout["version"] + 1:
                return 400, {"code": "InvalidRequest", "message": "wrong version"}
            roles = {role["id"]: role for role in self.layout["roles"]}
            for change in self.layout["stagedRoleChanges"]:
                if change.get("remove"):
                    roles.pop(change["id"], None)
                else:
                    roles[change["id"]] = change
            self.layout = dict(self.layout, version=body["version"], roles=list(roles.values()), stagedRoleChanges=[])
            return 200, {"message": ["ok"], "layout": self.layout}
        if operation == "GetKeyInfo":
            key = self.keys.get(query["id"][0])
            return (200, key) if key else (404, {"code": "NoSuchAccessKey"})
        if operation == "ImportKey":
            if not re.match(r"^GK[0-9a-f]{24}$", body["accessKeyId"]) or not re.match(r"^[0-9a-f]{64}$", body["secretAccessKey"]):
                return 400, {"code": "InvalidRequest", "message": "not a valid Garage key"}
            self.keys[body["accessKeyId"]] = {"accessKeyId": body["accessKeyId"], "name": body["name"]}
            return 200, self.keys[body["accessKeyId"]]
        if operation == "GetBucketInfo":
            bucket = self.buckets.get(query["globalAlias"][0])
            return (200, bucket) if bucket else (404, {"code": "NoSuchBucket"})
        if operation == "CreateBucket":
            bucket = {"id": "id-" + body["globalAlias"], "globalAliases": [body["globalAlias"]], "keys": []}
            self.buckets[body["globalAlias"]] = bucket
            return 200, bucket
        if operation == "AllowBucketKey":
            bucket = next(b for b in self.buckets.values() if b["id"] == body["bucketId"])
            bucket["keys"] = [k for k in bucket["keys"] if k["accessKeyId"] != body["accessKeyId"]]
            bucket["keys"].append({"accessKeyId": body["accessKeyId"], "permissions": body["permissions"]})
            return 200, bucket
        return 404, {"code": "NotFound"}

    def mutations(self):
        return [op for method, op in self.calls if method == "POST"]


@pytest.fixture
def garage():
    state = FakeGarage([{"id": "node1" * 8, "isUp": True, "draining": False}])

    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method):
            if self.headers.get("Authorization") != "Bearer " + state.token:
                self.send_response(403)
                self.end_headers()
                return
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            code, payload = state.handle(method, url.path.removeprefix("/v2/"), parse_qs(url.query), body)
            raw = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}"
    state.token = TOKEN
    yield state
    server.shutdown()


class FakeSecrets:
    """The Secrets part of the Kubernetes API, as the script's k8s() helper sees it."""

    def __init__(self):
        self.store = {}
        self.writes = []

    def __call__(self, method, path, body=None, content_type="application/json"):
        match = re.match(r"^/api/v1/namespaces/([^/]+)/secrets(?:/([^/]+))?$", path)
        namespace, name = match.groups()
        if method == "GET":
            return self.store.get((namespace, name))
        self.writes.append((method, namespace, name or body["metadata"]["name"]))
        if method == "POST":
            self.store[(namespace, body["metadata"]["name"])] = body
        elif method == "PATCH":
            self.store[(namespace, name)]["data"].update(body["data"])
        return body

    def values(self, namespace, name):
        return {k: base64.b64decode(v).decode() for k, v in self.store[(namespace, name)]["data"].items()}


def run(garage, secrets, monkeypatch, **overrides):
    config = {
        "namespace": "object-storage", "admin_url": garage.url, "garage_secret": "garage-internal",
        "credentials_secret": "s3-credentials", "copies_to": ["argo", "mlops-pipelines"],
        "buckets": ["datasets", "models", "workflow-artifacts"], "zone": "lab", "capacity": "50Gi",
        "replication_factor": 1, "key_name": "mlops", "labels": {"app.kubernetes.io/part-of": "researchops"},
        "wait_seconds": 2,
    }
    config.update(overrides)
    monkeypatch.setenv("GARAGE_SETUP_CONFIG", json.dumps(config))
    monkeypatch.syspath_prepend(str(MODULE_UTILS))
    spec = importlib.util.spec_from_file_location("garage_setup", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "k8s", secrets)
    monkeypatch.setattr(module.time, "sleep", lambda _: None)
    # The fake Garage knows the admin token only once the script has created it.
    original = module.ensure_secret

    def ensure_secret(namespace, name, generators):
        values = original(namespace, name, generators)
        if name == "garage-internal":
            garage.token = values["admin_token"]
        return values

    monkeypatch.setattr(module, "ensure_secret", ensure_secret)
    module.main()
    return module


def test_first_run_creates_everything(garage, monkeypatch):
    secrets = FakeSecrets()
    run(garage, secrets, monkeypatch)
    internal = secrets.values("object-storage", "garage-internal")
    assert re.match(r"^[0-9a-f]{64}$", internal["rpc_secret"])
    assert re.match(r"^[0-9a-f]{64}$", internal["admin_token"])
    creds = secrets.values("object-storage", "s3-credentials")
    assert re.match(r"^GK[0-9a-f]{24}$", creds["AWS_ACCESS_KEY_ID"])
    assert re.match(r"^[0-9a-f]{64}$", creds["AWS_SECRET_ACCESS_KEY"])
    for namespace in ("argo", "mlops-pipelines"):
        assert secrets.values(namespace, "s3-credentials") == creds
    assert secrets.store[("argo", "s3-credentials")]["metadata"]["labels"] == {"app.kubernetes.io/part-of": "researchops"}
    assert garage.layout["version"] == 1
    assert garage.layout["roles"] == [{"id": "node1" * 8, "zone": "lab", "capacity": 50 * 2**30, "tags": []}]
    assert list(garage.keys) == [creds["AWS_ACCESS_KEY_ID"]]
    assert sorted(garage.buckets) == ["datasets", "models", "workflow-artifacts"]
    for bucket in garage.buckets.values():
        assert bucket["keys"] == [{"accessKeyId": creds["AWS_ACCESS_KEY_ID"],
                                   "permissions": {"read": True, "write": True, "owner": True}}]


def test_second_run_changes_nothing(garage, monkeypatch):
    secrets = FakeSecrets()
    run(garage, secrets, monkeypatch)
    before = copy.deepcopy(secrets.store)
    secrets.writes.clear()
    garage.calls.clear()
    run(garage, secrets, monkeypatch)
    assert secrets.writes == []
    assert garage.mutations() == []
    assert secrets.store == before


def test_garage_that_lost_its_metadata_gets_the_same_key_back(garage, monkeypatch):
    secrets = FakeSecrets()
    run(garage, secrets, monkeypatch)
    creds = secrets.values("object-storage", "s3-credentials")
    garage.keys.clear()
    garage.buckets.clear()
    run(garage, secrets, monkeypatch)
    assert list(garage.keys) == [creds["AWS_ACCESS_KEY_ID"]]
    assert sorted(garage.buckets) == ["datasets", "models", "workflow-artifacts"]


def test_replaced_node_takes_over_the_layout(garage, monkeypatch):
    secrets = FakeSecrets()
    run(garage, secrets, monkeypatch)
    garage.nodes = [{"id": "node1" * 8, "isUp": False, "draining": False},
                    {"id": "node2" * 8, "isUp": True, "draining": False}]
    run(garage, secrets, monkeypatch, capacity="100G")
    assert garage.layout["version"] == 2
    assert garage.layout["roles"] == [{"id": "node2" * 8, "zone": "lab", "capacity": 100 * 10**9, "tags": []}]


def test_copy_that_drifted_is_updated(garage, monkeypatch):
    secrets = FakeSecrets()
    run(garage, secrets, monkeypatch)
    secrets.store[("argo", "s3-credentials")]["data"]["AWS_SECRET_ACCESS_KEY"] = base64.b64encode(b"old").decode()
    secrets.writes.clear()
    run(garage, secrets, monkeypatch)
    assert secrets.writes == [("PATCH", "argo", "s3-credentials")]
    assert secrets.values("argo", "s3-credentials") == secrets.values("object-storage", "s3-credentials")


def test_credentials_garage_cannot_import_fail_clearly(garage, monkeypatch):
    secrets = FakeSecrets()
    secrets.store[("object-storage", "s3-credentials")] = {"metadata": {"name": "s3-credentials"}, "data": {
        "AWS_ACCESS_KEY_ID": base64.b64encode(b"minioadmin").decode(),
        "AWS_SECRET_ACCESS_KEY": base64.b64encode(b"minioadmin").decode()}}
    with pytest.raises(SystemExit) as exc:
        run(garage, secrets, monkeypatch)
    assert "does not hold Garage-shaped credentials" in str(exc.value)
    assert "delete it" in str(exc.value)


def test_garage_not_answering_fails_after_the_wait(garage, monkeypatch):
    secrets = FakeSecrets()
    with pytest.raises(SystemExit) as exc:
        run(garage, secrets, monkeypatch, admin_url="http://127.0.0.1:9", wait_seconds=0)
    assert "did not answer" in str(exc.value)


def test_bad_capacity_fails(garage, monkeypatch):
    with pytest.raises(SystemExit) as exc:
        run(garage, FakeSecrets(), monkeypatch, capacity="fifty gigs")
    assert "is not a Kubernetes quantity" in str(exc.value)


def test_no_live_node_fails(garage, monkeypatch):
    garage.nodes = [{"id": "node1" * 8, "isUp": False, "draining": False}]
    with pytest.raises(SystemExit) as exc:
        run(garage, FakeSecrets(), monkeypatch)
    assert "no live node" in str(exc.value)
