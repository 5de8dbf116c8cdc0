"""Configure Harbor through its REST API (in-cluster Job, idempotent).

Creates the projects, the optional proxy-cache registry endpoint and project, and the CI
robot account (system level, push/pull on the CI projects); writes the robot's
credentials as a kubernetes.io/dockerconfigjson Secret. A robot whose Secret is missing
gets a new secret (Harbor shows a robot secret only once). Kubernetes calls go through
incluster_client (shipped beside this file).
Configuration: HARBOR_SETUP_CONFIG (JSON), admin password: HARBOR_ADMIN_PASSWORD.
"""
import base64
import json
import os
import secrets
import string
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from incluster_client import Client, HttpError, request, resource_path, run

CONFIG = json.loads(os.environ["HARBOR_SETUP_CONFIG"])
HARBOR = CONFIG["url"].rstrip("/") + "/api/v2.0"
ADMIN = "Basic " + base64.b64encode(("admin:" + os.environ["HARBOR_ADMIN_PASSWORD"]).encode()).decode()


def harbor(path, method="GET", body=None):
    return request(method, HARBOR + path, body, {"Authorization": ADMIN})


def wait_for_harbor():
    for _attempt in range(120):
        try:
            with urllib.request.urlopen(HARBOR + "/ping", timeout=10) as resp:
                if resp.read().strip() == b"Pong":
                    return
        except (urllib.error.URLError, OSError) as err:
            print(f"waiting for Harbor at {HARBOR}: {err}")
        time.sleep(5)
    sys.exit(f"Harbor did not answer {HARBOR}/ping")


def registry_id(endpoint):
    query = urllib.parse.quote("name=" + endpoint["name"])
    found = harbor("/registries?q=" + query)
    for item in found or []:
        if item["name"] == endpoint["name"]:
            return item["id"]
    harbor("/registries", "POST", {"name": endpoint["name"], "type": endpoint["type"], "url": endpoint["url"],
                                   "insecure": False})
    print("created registry endpoint {} ({})".format(endpoint["name"], endpoint["url"]))
    return registry_id(endpoint)


def ensure_project(name):
    try:
        harbor("/projects?project_name=" + urllib.parse.quote(name), "HEAD")
        print(f"project {name} exists")
        return
    except HttpError as err:
        if err.code != 404:
            raise
    body = {"project_name": name, "metadata": {"public": str(name in CONFIG["public_projects"]).lower()}}
    cache = CONFIG.get("proxy_cache")
    if cache and cache["project"] == name:
        body["registry_id"] = registry_id(cache["registry"])
    harbor("/projects", "POST", body)
    print(f"created project {name}")


def robot_secret():
    # Harbor's password policy: 8-128 characters with upper, lower case and a digit.
    alphabet = string.ascii_letters + string.digits
    while True:
        value = "".join(secrets.choice(alphabet) for _index in range(32))
        if any(c.islower() for c in value) and any(c.isupper() for c in value) and any(c.isdigit() for c in value):
            return value


def ensure_robot(client):
    """Return (full name, secret or None when the existing credentials are kept)."""
    permissions = [{"kind": "project", "namespace": project,
                    "access": [{"resource": "repository", "action": "push"},
                               {"resource": "repository", "action": "pull"}]}
                   for project in CONFIG["robot_projects"]]
    robots = harbor("/robots?page_size=100&q=" + urllib.parse.quote("Level=system"))
    full_name = "robot$" + CONFIG["robot"]
    robot = next((r for r in robots or [] if r["name"] in (full_name, CONFIG["robot"])), None)
    path = resource_path("secrets", CONFIG["push_secret_namespace"], CONFIG["push_secret"])
    secret_exists = client.get(path) is not None
    if robot is None:
        created = harbor("/robots", "POST", {"name": CONFIG["robot"], "level": "system", "duration": -1,
                                             "disable": False, "permissions": permissions})
        print("created robot {}".format(created["name"]))
        return created["name"], created["secret"]
    robot.update({"permissions": permissions, "disable": False})
    harbor("/robots/{}".format(robot["id"]), "PUT", robot)
    if secret_exists:
        print("robot {} and Secret {} exist, kept".format(robot["name"], path))
        return robot["name"], None
    secret = robot_secret()
    harbor("/robots/{}".format(robot["id"]), "PATCH", {"secret": secret})
    print("refreshed the secret of robot {} (its Secret was missing)".format(robot["name"]))
    return robot["name"], secret


def write_push_secret(client, name, secret):
    host = CONFIG["registry_host"]
    auth = base64.b64encode((f"{name}:{secret}").encode()).decode()
    config = {"auths": {host: {"username": name, "password": secret, "auth": auth}}}
    data = {".dockerconfigjson": base64.b64encode(json.dumps(config, sort_keys=True).encode()).decode()}
    namespace, secret_name = CONFIG["push_secret_namespace"], CONFIG["push_secret"]
    if client.get(resource_path("secrets", namespace, secret_name)) is None:
        client.create(resource_path("secrets", namespace), {
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": secret_name, "namespace": namespace, "labels": CONFIG["labels"]},
            "data": data,
        })
    else:
        client.merge_patch(resource_path("secrets", namespace, secret_name), {"data": data})
    print("wrote {}/{}".format(CONFIG["push_secret_namespace"], CONFIG["push_secret"]))


def main():
    client = Client()
    wait_for_harbor()
    for project in CONFIG["projects"]:
        ensure_project(project)
    name, secret = ensure_robot(client)
    if secret is not None:
        write_push_secret(client, name, secret)


if __name__ == "__main__":
    run(main)
