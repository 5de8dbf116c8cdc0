"""The CD steps run as generated: the plan and smoke scripts and the not-synced message
(Python, as the `script` templates hand them to `python3`), and the shape of the steps
that hold the CD ServiceAccount's token.

The kubectl image is the Kubernetes project's registry.k8s.io/kubectl
(kubernetes/kubernetes#116672; build/server-image/kubectl/Dockerfile: `COPY ${BINARY} /bin/`,
`ENTRYPOINT ["/bin/kubectl"]` on a distroless base, no shell), so those steps can only be
kubectl arguments. The behaviours of the former shell script (alpine/k8s image) kept
here: the lineage checks and their messages, the patch (commit-pinned targetRevision, the
model and tools images by placeholder, replicas, the version annotation, automated sync),
the sync wait with its hint, `kubectl rollout status`, and the smoke request's curl
flags (--retry 5 --retry-connrefused --retry-delay 3 --max-time 30 --fail-with-body).
tests/unit/plugins/filter/test_pipeline_harness.py runs the kubectl steps against a real
kube-apiserver."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from pipeline_fixtures import example_spec, images, platform
from test_pipeline_security import kubelet_expand

from ansible_collections.researchops.mlops.plugins.filter.pipeline import pipeline_objects

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def cd():
    objects = pipeline_objects([example_spec()], platform=platform(), images=images())["mnist"]
    return next(o for o in objects if o["kind"] == "WorkflowTemplate" and o["metadata"]["name"] == "mnist-cd")


def template(wft, name):
    return next(t for t in wft["spec"]["templates"] if t["name"] == name)


def run_script(tmp_path, script, values, **overrides):
    """Run a `script` template as Argo does (its source in a file, given to the command),
    with the env the kubelet hands it: Argo's {{...}} replaced by `values`, then $(VAR)
    expansion."""
    path = tmp_path / "script.py"
    path.write_text(script["source"], encoding="utf-8")
    env = {}
    for item in script["env"]:
        value = item["value"]
        for key, replacement in values.items():
            value = value.replace("{{" + key + "}}", replacement)
        env[item["name"]] = kubelet_expand(value, env)
    env.update(overrides)
    return subprocess.run([sys.executable, str(path)], env=env, capture_output=True, text=True, timeout=60, check=False)


def lineage(version="v1", passed=True, sha=SHA):
    return json.dumps({"code_sha": sha, "model_version": version, "metrics": {"passed": passed, "accuracy": 0.99}})


def plan(cd, tmp_path, text, version="v1", **overrides):
    return run_script(tmp_path, template(cd, "plan")["script"],
                      {"inputs.parameters.lineage": text, "workflow.parameters.model-version": version},
                      OUTPUTS=str(tmp_path / "out"), **overrides)


def test_cd_steps_in_order(cd):
    steps = [[s["name"] for s in group] for group in template(cd, "cd")["steps"]]
    assert steps == [["lineage"], ["plan"], ["patch"], ["sync"], ["rollout"], ["smoke"]]
    sync = {s["name"]: s for group in template(cd, "sync")["steps"] for s in group}
    assert sync["created"]["continueOn"] == {"failed": True}
    assert sync["synced"] == {"name": "synced", "template": "wait-synced", "continueOn": {"failed": True},
                              "when": "{{steps.created.status}} == Succeeded"}
    assert sync["not-synced"]["when"] == "{{steps.synced.status}} != Succeeded"


def test_steps_holding_the_cd_token_are_kubectl_arguments_only(cd):
    """Every container step of the CD template but the lineage read (awscli, S3 keys) is
    registry.k8s.io/kubectl with its entrypoint and no shell; the rest are Python
    scripts in the Docker Official Image."""
    kubectl = images()["kubectl"]
    assert kubectl.startswith("registry.k8s.io/kubectl:")
    for tmpl in cd["spec"]["templates"]:
        if "container" in tmpl and tmpl["name"] != "lineage":
            container = tmpl["container"]
            assert container["image"] == kubectl and container["command"] == ["/bin/kubectl"], tmpl["name"]
            assert not any(arg in ("sh", "-c", "/bin/sh", "bash") for arg in container["args"]), tmpl["name"]
        if "script" in tmpl:
            assert tmpl["script"]["image"].startswith("docker.io/library/python:"), tmpl["name"]
    args = {t["name"]: t["container"].get("args") for t in cd["spec"]["templates"] if "container" in t}
    assert args["patch"] == ["-n", "argocd", "patch", "application", "mnist-serving", "--type", "merge",
                             "-p", "{{inputs.parameters.patch}}"]
    assert args["wait-created"] == ["-n", "mlops-pipelines", "wait", "--for=create", "deployment/mnist", "--timeout=600s"]
    assert args["wait-synced"] == [
        "-n", "mlops-pipelines", "wait",
        "--for=jsonpath={.spec.template.metadata.annotations.researchops\\.io/model-version}"
        "={{workflow.parameters.model-version}}", "deployment/mnist", "--timeout=600s"]
    assert args["rollout"] == ["-n", "mlops-pipelines", "rollout", "status", "deployment/mnist", "--timeout=600s"]


def test_plan_writes_the_patch_of_the_former_deploy_script(cd, tmp_path):
    result = plan(cd, tmp_path, lineage())
    assert result.returncode == 0, result.stderr
    serve = f"{platform()['registry_host']}/{platform()['registry_project']}/mnist-serve:{SHA}"
    assert result.stdout.strip() == f"Application mnist-serving: model version v1, image {serve}, manifests at {SHA}"
    patch = json.loads(kubelet_expand((tmp_path / "out" / "patch").read_text(encoding="utf-8"), {}))
    assert patch == {"spec": {
        "source": {"targetRevision": SHA, "kustomize": {
            "images": [f"model={serve}", f"s3-tools={images()['awscli']}"],
            "replicas": [{"name": "mnist", "count": 1}],
            "commonAnnotations": {"researchops.io/model-version": "v1"}}},
        "syncPolicy": {"automated": {"prune": True, "selfHeal": True}}}}


def test_plan_doubles_dollars_for_the_kubelet(cd, tmp_path):
    """The patch reaches `kubectl patch -p` through the kubelet's $(VAR) expansion of args."""
    result = plan(cd, tmp_path, lineage(), TOOLS_IMAGE="x/$(HOME):$$")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "out" / "patch").read_text(encoding="utf-8")
    patch = json.loads(kubelet_expand(text, {"HOME": "/root"}))
    assert patch["spec"]["source"]["kustomize"]["images"][1] == "s3-tools=x/$(HOME):$$"


@pytest.mark.parametrize(("text", "version", "message"), [
    (lineage(version="v2"), "v1", "lineage of v1 names model version v2: refusing to deploy"),
    (lineage(passed=False), "v1", "lineage of model version v1 does not record a passed gate: refusing to deploy"),
    (json.dumps({"code_sha": SHA, "model_version": "v1", "metrics": {"passed": "true"}}), "v1",
     "lineage of model version v1 does not record a passed gate: refusing to deploy"),
    (lineage(sha=""), "v1", "lineage of v1 has no code_sha: refusing to deploy"),
    ("not json", "v1", "lineage of v1 is not JSON"),
])
def test_plan_refuses_a_bad_lineage(cd, tmp_path, text, version, message):
    result = plan(cd, tmp_path, text, version)
    assert result.returncode == 1 and message in result.stderr
    assert not (tmp_path / "out" / "patch").exists()


def test_not_synced_says_where_to_look(cd, tmp_path):
    result = run_script(tmp_path, template(cd, "not-synced")["script"], {"workflow.parameters.model-version": "v1"})
    assert result.returncode == 1
    assert result.stderr.strip() == ("Argo CD did not sync model version v1 to deployment/mnist within 600s; "
                                     "see: kubectl -n argocd get application mnist-serving -o yaml")


class Server:
    """A local HTTP server answering POSTs from a list of (status, body); records requests."""

    def __init__(self, answers):
        self.answers, self.requests = list(answers), []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                server.requests.append((self.path, self.headers["Content-Type"], self.rfile.read(length)))
                status, body = server.answers.pop(0) if len(server.answers) > 1 else server.answers[0]
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args):
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/predict"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def smoke(cd, tmp_path, url):
    return run_script(tmp_path, template(cd, "smoke")["script"], {"workflow.parameters.model-version": "v1"},
                      URL=url, RETRY_DELAY="0")


def test_smoke_keeps_the_curl_settings(cd):
    env = {e["name"]: e["value"] for e in template(cd, "smoke")["script"]["env"]}
    assert (env["RETRIES"], env["RETRY_DELAY"], env["MAX_TIME"]) == ("5", "3", "30")
    assert env["URL"] == "http://mnist.mlops-pipelines.svc.cluster.local:8080/predict"


def test_smoke_posts_the_body_and_accepts_the_expected_key(cd, tmp_path):
    server = Server([(200, '{"predictions": [7]}')])
    try:
        result = smoke(cd, tmp_path, server.url)
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f'smoke request POST {server.url} ok for model version v1: {{"predictions": [7]}}'
    (path, content_type, body), = server.requests
    assert path == "/predict" and content_type == "application/json"
    assert json.loads(body) == example_spec()["cd"]["smoke"]["body"]


def test_smoke_retries_server_errors_then_succeeds(cd, tmp_path):
    server = Server([(503, "busy"), (502, "busy"), (200, '{"predictions": []}')])
    try:
        result = smoke(cd, tmp_path, server.url)
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    assert len(server.requests) == 3


def test_smoke_fails_with_the_body_after_five_retries(cd, tmp_path):
    server = Server([(500, "model not loaded")])
    try:
        result = smoke(cd, tmp_path, server.url)
    finally:
        server.close()
    assert result.returncode == 1 and len(server.requests) == 6
    assert f"smoke request POST {server.url} failed: HTTP 500: model not loaded" in result.stderr


@pytest.mark.parametrize("answer", ['{"other": 1}', '["predictions"]', "predictions"])
def test_smoke_fails_without_the_expected_key(cd, tmp_path, answer):
    server = Server([(200, answer)])
    try:
        result = smoke(cd, tmp_path, server.url)
    finally:
        server.close()
    assert result.returncode == 1 and len(server.requests) == 1
    assert f"smoke request POST {server.url} answered without 'predictions': {answer}" in result.stderr


def test_smoke_retries_a_refused_connection(cd, tmp_path):
    server = Server([(200, "{}")])
    url = server.url
    server.close()  # nothing listens on the port any more
    result = smoke(cd, tmp_path, url)
    assert result.returncode == 1
    assert result.stderr.count("retrying in 0s") == 5 and f"smoke request POST {url} failed:" in result.stderr
