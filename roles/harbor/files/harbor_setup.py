"""Configure Harbor through its REST API (in-cluster Job, idempotent).

Creates the projects, the optional proxy-cache registry endpoint and project, and the CI
robot account (system level, push/pull on the CI projects); writes the robot's
credentials as a kubernetes.io/dockerconfigjson Secret. A robot whose Secret is missing
gets a new secret (Harbor shows a robot secret only once). Standard library only.
Configuration: HARBOR_SETUP_CONFIG (JSON), admin password: HARBOR_ADMIN_PASSWORD.
"""
import base64
import json
import os
import secrets
import ssl
import string
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

CONFIG = json.loads(os.environ["HARBOR_SETUP_CONFIG"])
HARBOR = CONFIG["url"].rstrip("/") + "/api/v2.0"
ADMIN = "Basic " + base64.b64encode(("admin:" + os.environ["HARBOR_ADMIN_PASSWORD"]).encode()).decode()
SA = "/var/run/secrets/kubernetes.io/serviceaccount"
K8S = "https://%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
K8S_CTX = ssl.create_default_context(cafile=SA + "/ca.crt")


def request(url, method="GET", body=None, headers=None, context=None, ok_missing=False):
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), method=method)
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, context=context, timeout=30) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw.strip() else None
    except urllib.error.HTTPError as err:
        if ok_missing and err.code == 404:
            return 404, None
        sys.exit("%s %s failed: HTTP %s %s" % (method, url, err.code, err.read()[:500]))


def harbor(path, method="GET", body=None, ok_missing=False):
    return request(HARBOR + path, method, body, {"Authorization": ADMIN, "Accept": "application/json"},
                   ok_missing=ok_missing)


def k8s(path, method="GET", body=None, content_type=None):
    with open(SA + "/token", encoding="utf-8") as token_file:
        headers = {"Authorization": "Bearer " + token_file.read().strip(), "Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    return request(K8S + path, method, body, headers, K8S_CTX, ok_missing=True)


def wait_for_harbor():
    for _unused in range(120):
        try:
            with urllib.request.urlopen(HARBOR + "/ping", timeout=10) as resp:
                if resp.read().strip() == b"Pong":
                    return
        except (urllib.error.URLError, OSError) as err:
            print("waiting for Harbor at %s: %s" % (HARBOR, err))
        time.sleep(5)
    sys.exit("Harbor did not answer %s/ping" % HARBOR)


def registry_id(endpoint):
    query = urllib.parse.quote("name=" + endpoint["name"])
    _unused, found = harbor("/registries?q=" + query)
    for item in found or []:
        if item["name"] == endpoint["name"]:
            return item["id"]
    harbor("/registries", "POST", {"name": endpoint["name"], "type": endpoint["type"], "url": endpoint["url"],
                                   "insecure": False})
    print("created registry endpoint %s (%s)" % (endpoint["name"], endpoint["url"]))
    return registry_id(endpoint)


def ensure_project(name):
    status, _unused = harbor("/projects?project_name=" + urllib.parse.quote(name), "HEAD", ok_missing=True)
    if status == 200:
        print("project %s exists" % name)
        return
    body = {"project_name": name, "metadata": {"public": str(name in CONFIG["public_projects"]).lower()}}
    cache = CONFIG.get("proxy_cache")
    if cache and cache["project"] == name:
        body["registry_id"] = registry_id(cache["registry"])
    harbor("/projects", "POST", body)
    print("created project %s" % name)


def robot_secret():
    # Harbor's password policy: 8-128 characters with upper, lower case and a digit.
    alphabet = string.ascii_letters + string.digits
    while True:
        value = "".join(secrets.choice(alphabet) for _unused in range(32))
        if any(c.islower() for c in value) and any(c.isupper() for c in value) and any(c.isdigit() for c in value):
            return value


def ensure_robot():
    """Return (full name, secret or None when the existing credentials are kept)."""
    permissions = [{"kind": "project", "namespace": project,
                    "access": [{"resource": "repository", "action": "push"},
                               {"resource": "repository", "action": "pull"}]}
                   for project in CONFIG["robot_projects"]]
    _unused, robots = harbor("/robots?page_size=100&q=" + urllib.parse.quote("Level=system"))
    full_name = "robot$" + CONFIG["robot"]
    robot = next((r for r in robots or [] if r["name"] in (full_name, CONFIG["robot"])), None)
    path = "/api/v1/namespaces/%s/secrets/%s" % (CONFIG["push_secret_namespace"], CONFIG["push_secret"])
    status, _unused = k8s(path)
    if robot is None:
        _unused, created = harbor("/robots", "POST", {"name": CONFIG["robot"], "level": "system", "duration": -1,
                                                      "disable": False, "permissions": permissions})
        print("created robot %s" % created["name"])
        return created["name"], created["secret"]
    robot.update({"permissions": permissions, "disable": False})
    harbor("/robots/%s" % robot["id"], "PUT", robot)
    if status == 200:
        print("robot %s and Secret %s exist, kept" % (robot["name"], path))
        return robot["name"], None
    secret = robot_secret()
    harbor("/robots/%s" % robot["id"], "PATCH", {"secret": secret})
    print("refreshed the secret of robot %s (its Secret was missing)" % robot["name"])
    return robot["name"], secret


def write_push_secret(name, secret):
    host = CONFIG["registry_host"]
    auth = base64.b64encode(("%s:%s" % (name, secret)).encode()).decode()
    config = {"auths": {host: {"username": name, "password": secret, "auth": auth}}}
    data = {".dockerconfigjson": base64.b64encode(json.dumps(config, sort_keys=True).encode()).decode()}
    base = "/api/v1/namespaces/%s/secrets" % CONFIG["push_secret_namespace"]
    status, _unused = k8s(base + "/" + CONFIG["push_secret"])
    if status == 404:
        k8s(base, "POST", {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
                           "metadata": {"name": CONFIG["push_secret"], "namespace": CONFIG["push_secret_namespace"],
                                        "labels": CONFIG["labels"]},
                           "data": data}, "application/json")
    else:
        k8s(base + "/" + CONFIG["push_secret"], "PATCH", {"data": data}, "application/merge-patch+json")
    print("wrote %s/%s" % (CONFIG["push_secret_namespace"], CONFIG["push_secret"]))


def main():
    wait_for_harbor()
    for project in CONFIG["projects"]:
        ensure_project(project)
    name, secret = ensure_robot()
    if secret is not None:
        write_push_secret(name, secret)


main()
