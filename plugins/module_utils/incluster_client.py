# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""The Kubernetes API client of the platform's in-cluster Jobs.

Shipped as `incluster_client.py` into every Job's script ConfigMap (filter
`researchops.mlops.job_scripts`, or `generated_secret`), beside the script that imports
it: `from incluster_client import Client, HttpError, request, run`. Standard library only
(the Jobs run a plain python image). It authenticates with the pod's service-account
token and verifies the API server against the service-account CA.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
TIMEOUT = 30


class HttpError(Exception):
    """An HTTP answer other than 2xx; `code` holds the status."""

    def __init__(self, method, url, code, body):
        super().__init__(f"{method} {url} failed: HTTP {code} {body[:500]}")
        self.code = code


def _open(req, context):
    """Send one request through an opener (with the service account's TLS context when
    given); like any opener it raises HTTPError for a non-2xx answer."""
    handlers = [urllib.request.HTTPSHandler(context=context)] if context is not None else []
    return urllib.request.build_opener(*handlers).open(req, timeout=TIMEOUT)


def request(method, url, body=None, headers=None, context=None, content_type=JSON):
    """Send `body` (JSON-encoded when not None); return the decoded JSON answer or None
    when it is empty. Raises HttpError for a non-2xx answer."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    req.add_header("Accept", JSON)
    if data is not None:
        req.add_header("Content-Type", content_type)
    try:
        with _open(req, context) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as err:
        raise HttpError(method, url, err.code, err.read().decode(errors="replace")) from err
    return json.loads(raw) if raw.strip() else None


def resource_path(resource, namespace, name=""):
    """Path of a core (v1) namespaced resource collection, or of one object of it."""
    return f"/api/v1/namespaces/{namespace}/{resource}" + (f"/{name}" if name else "")


class Client:
    """Calls to the API server this pod runs in."""

    def __init__(self, server=None, service_account_dir=None, context=None):
        if server is None:
            server = f"https://{os.environ['KUBERNETES_SERVICE_HOST']}:{os.environ['KUBERNETES_SERVICE_PORT']}"
        self.server = server.rstrip("/")
        self.service_account_dir = service_account_dir or SERVICE_ACCOUNT_DIR
        self._context = context

    @property
    def context(self):
        if self._context is None and self.server.startswith("https:"):
            self._context = ssl.create_default_context(cafile=os.path.join(self.service_account_dir, "ca.crt"))
        return self._context

    def _token(self):
        # Read on every call: the kubelet rotates projected tokens.
        with open(os.path.join(self.service_account_dir, "token"), encoding="utf-8") as handle:
            return handle.read().strip()

    def call(self, method, path, body=None, content_type=JSON):
        """The decoded answer, or None for a GET of something that does not exist (404).
        Any other failure raises HttpError."""
        headers = {"Authorization": "Bearer " + self._token()}
        try:
            return request(method, self.server + path, body, headers, self.context, content_type)
        except HttpError as err:
            if err.code == 404 and method == "GET":
                return None
            raise

    def get(self, path):
        return self.call("GET", path)

    def create(self, path, body):
        return self.call("POST", path, body)

    def merge_patch(self, path, body):
        return self.call("PATCH", path, body, MERGE_PATCH)


def run(main, *args):
    """Run a Job script's `main(*args)`: an HttpError ends the script with exit status 1
    and the error (method, URL, status, answer) on standard error, for the Job's log and
    its retry (backoffLimit); any other error keeps its traceback.

    Every Job script ends with `if __name__ == "__main__": run(main)`."""
    try:
        main(*args)
    except HttpError as err:
        raise SystemExit(str(err)) from err
