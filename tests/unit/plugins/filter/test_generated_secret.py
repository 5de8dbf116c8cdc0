"""Unit tests of the generated_secret filter: the objects it returns, its input checks,
and the script its Job runs (executed here against an in-memory fake API server)."""
from __future__ import annotations

import base64
import importlib
import io
import json
import runpy
import ssl
import sys
import types
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.researchops.mlops.plugins.filter import generated_secret as mod
from ansible_collections.researchops.mlops.plugins.filter.generated_secret import (
    CREATES_ANNOTATION,
    DEFAULT_IMAGE,
    FilterModule,
    generated_secret,
)

K8S_VERSION = "1.33.0"


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def test_registered_under_its_name():
    assert FilterModule().filters()["generated_secret"] is generated_secret


def test_objects_for_a_secret_with_copies():
    objects = generated_secret("harbor-db", namespace="postgresql", keys=["password"],
                               copies_to=["harbor"], static={"username": "harbor"})
    kinds = [o["kind"] for o in objects]
    assert kinds == ["ServiceAccount", "Role", "RoleBinding", "Role", "RoleBinding", "ConfigMap", "Job"]
    assert {o["metadata"]["name"] for o in objects} == {"gen-secret-harbor-db"}
    roles = by_kind(objects, "Role")
    assert [r["metadata"]["namespace"] for r in roles] == ["postgresql", "harbor"]
    for role in roles:
        named, create = role["rules"]
        assert named["resourceNames"] == ["harbor-db"]
        assert named["verbs"] == ["get", "patch"]
        assert create["verbs"] == ["create"] and "resourceNames" not in create
    for binding in by_kind(objects, "RoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "gen-secret-harbor-db", "namespace": "postgresql"}]
    job = by_kind(objects, "Job")[0]
    assert job["metadata"]["namespace"] == "postgresql"
    assert job["metadata"]["annotations"][CREATES_ANNOTATION] == "postgresql/harbor-db,harbor/harbor-db"
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "gen-secret-harbor-db"
    assert pod["containers"][0]["image"] == DEFAULT_IMAGE
    config = json.loads(pod["containers"][0]["env"][0]["value"])
    assert config == {
        "name": "harbor-db", "namespace": "postgresql", "keys": ["password"], "copies_to": ["harbor"],
        "length": 32, "static": {"username": "harbor"},
        "labels": {"app.kubernetes.io/managed-by": "researchops.mlops", "researchops.io/generated-by": "gen-secret-harbor-db"},
    }
    data = by_kind(objects, "ConfigMap")[0]["data"]
    module_utils = Path(mod.__file__).parents[1] / "module_utils"
    assert data == {
        "generate.py": (module_utils / "generate_secret.py").read_text(encoding="utf-8"),
        "incluster_client.py": (module_utils / "incluster_client.py").read_text(encoding="utf-8"),
    }


def test_every_object_is_namespaced_and_validates_strictly():
    objects = generated_secret("s3-credentials", namespace="object-storage",
                               keys=["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
                               copies_to=["argo", "mlops-pipelines"], labels={"app.kubernetes.io/part-of": "researchops"})
    for obj in objects:
        assert obj["metadata"]["namespace"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "researchops"
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_output_is_deterministic_and_holds_no_secret_value():
    first = generated_secret("x-secret", namespace="ns1", copies_to=["ns2"])
    second = generated_secret("x-secret", namespace="ns1", copies_to=["ns2"])
    assert first == second
    assert yaml.safe_dump(first) == yaml.safe_dump(second)


def test_default_image_is_the_versions_file_pin(repo_root):
    versions = yaml.safe_load((repo_root / "roles/mlops/defaults/main/versions.yml").read_text())
    assert versions["mlops_job_image"] == DEFAULT_IMAGE


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad_Name", "namespace": "ns"}, "name 'Bad_Name' is not a valid Kubernetes name"),
        ({"name": "a" * 53, "namespace": "ns"}, "at most 52 characters"),
        ({"name": "", "namespace": "ns"}, "name must be a non-empty string"),
        ({"name": "ok"}, "namespace is required"),
        ({"name": "ok", "namespace": "has.dot"}, "namespace 'has.dot' is not a valid Kubernetes name"),
        ({"name": "ok", "namespace": "ns", "keys": []}, "keys must name at least one key"),
        ({"name": "ok", "namespace": "ns", "keys": "password"}, "keys must be a list of strings"),
        ({"name": "ok", "namespace": "ns", "keys": ["pass word"]}, "keys[0] 'pass word' is not a valid Secret key"),
        ({"name": "ok", "namespace": "ns", "keys": ["a", "a"]}, "keys has duplicates"),
        ({"name": "ok", "namespace": "ns", "copies_to": ["ns"]}, "copies_to[0] 'ns' is the namespace"),
        ({"name": "ok", "namespace": "ns", "copies_to": [""]}, "copies_to[0] must be a non-empty string"),
        ({"name": "ok", "namespace": "ns", "length": "32"}, "length must be an integer"),
        ({"name": "ok", "namespace": "ns", "length": True}, "length must be an integer"),
        ({"name": "ok", "namespace": "ns", "length": 8}, "length must be between 16 and 256"),
        ({"name": "ok", "namespace": "ns", "static": ["user"]}, "static must be a mapping"),
        ({"name": "ok", "namespace": "ns", "static": {"password": "x"}}, "static key 'password' is also in keys"),
        ({"name": "ok", "namespace": "ns", "static": {"user": 1}}, "static.user must be a string"),
        ({"name": "ok", "namespace": "ns", "image": "python:latest"}, "must be pinned"),
        ({"name": "ok", "namespace": "ns", "image": "registry:5000/python"}, "must be pinned"),
        ({"name": "ok", "namespace": "ns", "image": ""}, "image must be an image reference"),
        ({"name": "ok", "namespace": "ns", "labels": {"bad key!": "x"}}, "labels key 'bad key!'"),
        ({"name": "ok", "namespace": "ns", "labels": {"a": "x" * 64}}, "is not a valid label value"),
    ],
)
def test_bad_input_is_rejected_with_the_field(kwargs, message):
    name = kwargs.pop("name")
    with pytest.raises(AnsibleFilterError) as err:
        generated_secret(name, **kwargs)
    assert str(err.value).startswith("generated_secret: ")
    assert message in str(err.value)


def test_digest_pinned_image_is_accepted():
    image = "registry:5000/python@sha256:" + "a" * 64
    job = generated_secret("ok", namespace="ns", image=image)[-1]
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == image


# ---------------------------------------------------------------- the Job's script


class FakeAPI:
    """Just enough of the Kubernetes Secrets API for the script."""

    def __init__(self):
        self.secrets: dict[tuple[str, str], dict] = {}
        self.calls: list[tuple[str, str]] = []

    def urlopen(self, req, context=None, timeout=None):
        assert req.headers["Authorization"] == "Bearer test-token"
        method, url = req.get_method(), urllib.parse.urlparse(req.full_url)
        self.calls.append((method, url.path))
        parts = url.path.strip("/").split("/")  # api v1 namespaces <ns> secrets [name]
        namespace, name = parts[3], (parts[5] if len(parts) > 5 else None)
        body = json.loads(req.data) if req.data else None
        if method == "GET":
            if (namespace, name) not in self.secrets:
                raise urllib.error.HTTPError(req.full_url, 404, "Not Found", {}, io.BytesIO(b"{}"))
            return self._response(self.secrets[(namespace, name)])
        if method == "POST":
            assert body["metadata"]["namespace"] == namespace
            key = (namespace, body["metadata"]["name"])
            assert key not in self.secrets
            self.secrets[key] = body
            return self._response(body, 201)
        if method == "PATCH":
            assert req.headers["Content-type"] == "application/merge-patch+json"
            self.secrets[(namespace, name)]["data"].update(body["data"])
            return self._response(self.secrets[(namespace, name)])
        raise AssertionError(method)

    @staticmethod
    def _response(obj, status=200):
        class Response(io.BytesIO):
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

        resp = Response(json.dumps(obj).encode())
        resp.status = status
        return resp


def run_job(api, objects, monkeypatch, tmp_path: Path):
    """Execute the ConfigMap script with the env of the Job, against the fake API."""
    job = by_kind(objects, "Job")[0]
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.43.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # incluster_client sends through urllib.request.build_opener(...).open(req, timeout=...)
    monkeypatch.setattr(urllib.request, "build_opener",
                        lambda *handlers: types.SimpleNamespace(open=lambda req, timeout=None: api.urlopen(req, timeout=timeout)))
    monkeypatch.setattr(ssl, "create_default_context", lambda cafile=None: None)
    # The ConfigMap mounted as a folder, as in the pod; the token where the client reads it.
    scripts = tmp_path / "scripts"
    scripts.mkdir(exist_ok=True)
    for name, source in by_kind(objects, "ConfigMap")[0]["data"].items():
        (scripts / name).write_text(source, encoding="utf-8")
    (tmp_path / "token").write_text("test-token\n")
    monkeypatch.syspath_prepend(str(scripts))
    monkeypatch.delitem(sys.modules, "incluster_client", raising=False)
    client = importlib.import_module("incluster_client")
    assert Path(client.__file__).parent == scripts
    monkeypatch.setattr(client, "SERVICE_ACCOUNT_DIR", str(tmp_path))
    runpy.run_path(str(scripts / "generate.py"), run_name="__main__")


def decoded(secret):
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_script_creates_once_and_copies(monkeypatch, tmp_path):
    api = FakeAPI()
    objects = generated_secret("db", namespace="postgresql", keys=["password"], copies_to=["harbor"],
                               static={"username": "harbor"}, length=24)
    run_job(api, objects, monkeypatch, tmp_path)
    source = decoded(api.secrets[("postgresql", "db")])
    assert source["username"] == "harbor"
    assert len(source["password"]) == 24 and source["password"].isalnum()
    assert decoded(api.secrets[("harbor", "db")]) == source
    assert api.secrets[("harbor", "db")]["metadata"]["labels"]["researchops.io/generated-by"] == "gen-secret-db"

    # Second run: nothing regenerated, nothing written.
    api.calls.clear()
    run_job(api, objects, monkeypatch, tmp_path)
    assert decoded(api.secrets[("postgresql", "db")]) == source
    assert [m for m, _body in api.calls] == ["GET", "GET"]


def test_script_adds_new_keys_and_repairs_copies(monkeypatch, tmp_path):
    api = FakeAPI()
    run_job(api, generated_secret("s3", namespace="a", keys=["K1"], copies_to=["b"]), monkeypatch, tmp_path)
    first = decoded(api.secrets[("a", "s3")])
    api.secrets[("b", "s3")]["data"]["K1"] = base64.b64encode(b"tampered").decode()

    run_job(api, generated_secret("s3", namespace="a", keys=["K1", "K2"], copies_to=["b"]), monkeypatch, tmp_path)
    source = decoded(api.secrets[("a", "s3")])
    assert source["K1"] == first["K1"]
    assert len(source["K2"]) == 32
    assert decoded(api.secrets[("b", "s3")]) == source


def test_script_values_differ_between_secrets(monkeypatch, tmp_path):
    api = FakeAPI()
    run_job(api, generated_secret("one", namespace="a"), monkeypatch, tmp_path)
    run_job(api, generated_secret("two", namespace="a"), monkeypatch, tmp_path)
    assert decoded(api.secrets[("a", "one")])["password"] != decoded(api.secrets[("a", "two")])["password"]


def test_script_fails_loudly_on_api_errors(monkeypatch, tmp_path):
    api = FakeAPI()

    def forbidden(req, context=None, timeout=None):
        raise urllib.error.HTTPError(req.full_url, 403, "Forbidden", {}, io.BytesIO(b"secrets is forbidden"))

    api.urlopen = forbidden
    with pytest.raises(SystemExit) as err:
        run_job(api, generated_secret("db", namespace="a"), monkeypatch, tmp_path)
    assert "HTTP 403" in str(err.value) and "forbidden" in str(err.value)


def test_module_constants_are_consistent():
    assert mod.MAX_NAME == 52
