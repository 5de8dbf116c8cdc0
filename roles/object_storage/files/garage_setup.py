"""Configure the platform's Garage S3 store (in-cluster Job, idempotent, stdlib only).

1. Secrets, created once and never rotated here: Garage's own Secret (rpc_secret: 32
   hex-encoded bytes, admin_token) and the S3 credentials Secret (AWS_ACCESS_KEY_ID:
   "GK" + 12 hex-encoded bytes, AWS_SECRET_ACCESS_KEY: 32 hex-encoded bytes, the only
   shapes Garage imports), copied into the other namespaces that need the credentials.
2. Once Garage's admin API answers: a layout role for every live node that has none
   (capacity from the volume size), roles of nodes that are gone removed, applied.
3. The access key imported (when Garage does not know it), each bucket created (global
   alias) and the key allowed to read, write and own it.
Configuration: GARAGE_SETUP_CONFIG (JSON). Kubernetes and Garage calls go through
incluster_client (shipped beside this file). Exit status 0 when everything is in place.
"""
import base64
import json
import os
import re
import secrets
import sys
import time
import urllib.error
import urllib.parse

from incluster_client import Client, HttpError, request, resource_path, run

CONFIG = json.loads(os.environ["GARAGE_SETUP_CONFIG"])
KEY_ID = re.compile(r"^GK[0-9a-f]{24}$")
SECRET_KEY = re.compile(r"^[0-9a-f]{64}$")
UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
         "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}


# ------------------------------------------------------------------ Kubernetes Secrets
def k8s(method, path, body=None, content_type="application/json"):
    """The answer of the API server this Job runs in; None for a GET of a missing object."""
    return Client().call(method, path, body, content_type)


def secret_path(namespace, name=""):
    return resource_path("secrets", namespace, name)


def b64(value):
    return base64.b64encode(value.encode()).decode()


def unb64(value):
    return base64.b64decode(value).decode()


def ensure_secret(namespace, name, generators):
    """Secret `name` with a value for each key of `generators`; existing values are kept."""
    current = k8s("GET", secret_path(namespace, name))
    if current is None:
        data = {key: b64(make()) for key, make in generators.items()}
        k8s("POST", secret_path(namespace), {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace, "labels": CONFIG["labels"]},
            "data": data,
        })
        print(f"created Secret {namespace}/{name}")
        return {key: unb64(value) for key, value in data.items()}
    data = dict(current.get("data") or {})
    missing = {key: b64(make()) for key, make in generators.items() if key not in data}
    if missing:
        k8s("PATCH", secret_path(namespace, name), {"data": missing}, "application/merge-patch+json")
        data.update(missing)
        print("added {} to Secret {}/{}".format(", ".join(sorted(missing)), namespace, name))
    return {key: unb64(data[key]) for key in generators}


def copy_secret(namespace, name, values):
    data = {key: b64(value) for key, value in values.items()}
    current = k8s("GET", secret_path(namespace, name))
    if current is None:
        k8s("POST", secret_path(namespace), {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace, "labels": CONFIG["labels"]},
            "data": data,
        })
        print(f"copied Secret {name} to {namespace}")
    elif any((current.get("data") or {}).get(key) != value for key, value in data.items()):
        k8s("PATCH", secret_path(namespace, name), {"data": data}, "application/merge-patch+json")
        print(f"updated the copy of Secret {name} in {namespace}")


# ------------------------------------------------------------------ Garage admin API
def garage(method, operation, body=None, query=None, token=""):
    url = CONFIG["admin_url"].rstrip("/") + "/v2/" + operation
    if query:
        url += "?" + urllib.parse.urlencode(query)
    return request(method, url, body, {"Authorization": "Bearer " + token})


def wait_for_garage(token):
    deadline = time.monotonic() + CONFIG.get("wait_seconds", 900)
    while True:
        try:
            return garage("GET", "GetClusterStatus", token=token)
        except (HttpError, urllib.error.URLError, OSError) as err:
            if time.monotonic() > deadline:
                sys.exit("Garage's admin API at {} did not answer: {}".format(CONFIG["admin_url"], err))
            print("waiting for Garage at {}: {}".format(CONFIG["admin_url"], err))
            time.sleep(5)


def capacity_bytes(quantity):
    match = re.match(r"^([0-9]+)(|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)$", str(quantity))
    if not match:
        sys.exit(f"capacity {quantity!r} is not a Kubernetes quantity like 50Gi")
    return int(match.group(1)) * UNITS[match.group(2)]


def ensure_layout(status, token):
    layout = garage("GET", "GetClusterLayout", token=token)
    assigned = {role["id"] for role in layout.get("roles") or []}
    live = [node for node in status["nodes"] if node.get("isUp")]
    if not live:
        sys.exit("Garage reports no live node")
    live_ids = {node["id"] for node in live}
    changes = [{"id": node["id"], "zone": CONFIG["zone"], "capacity": capacity_bytes(CONFIG["capacity"]), "tags": []}
               for node in live if node["id"] not in assigned]
    # A node whose volume was lost comes back with a new id; its old role holds nothing.
    if len(live_ids) >= CONFIG["replication_factor"]:
        changes += [{"id": node_id, "remove": True} for node_id in sorted(assigned - live_ids)]
    if not changes:
        print("layout version {} already assigns every live node".format(layout["version"]))
        return
    garage("POST", "UpdateClusterLayout", {"roles": changes}, token=token)
    version = garage("GET", "GetClusterLayout", token=token)["version"] + 1
    garage("POST", "ApplyClusterLayout", {"version": version}, token=token)
    print("applied layout version {} ({})".format(version, ", ".join(
        ("remove " if change.get("remove") else "assign ") + change["id"][:16] for change in changes)))


def ensure_key(key_id, secret_key, token):
    try:
        garage("GET", "GetKeyInfo", query={"id": key_id}, token=token)
        print(f"access key {key_id} known")
    except HttpError as err:
        if err.code not in (400, 404):
            raise
        garage("POST", "ImportKey", {"accessKeyId": key_id, "secretAccessKey": secret_key,
                                     "name": CONFIG["key_name"]}, token=token)
        print("imported access key {} ({})".format(key_id, CONFIG["key_name"]))


def ensure_bucket(name, key_id, token):
    try:
        bucket = garage("GET", "GetBucketInfo", query={"globalAlias": name}, token=token)
    except HttpError as err:
        if err.code not in (400, 404):
            raise
        bucket = garage("POST", "CreateBucket", {"globalAlias": name}, token=token)
        print(f"created bucket {name}")
    allowed = {entry.get("accessKeyId"): entry.get("permissions") or {} for entry in bucket.get("keys") or []}
    wanted = {"read": True, "write": True, "owner": True}
    if allowed.get(key_id) != wanted:
        garage("POST", "AllowBucketKey", {"bucketId": bucket["id"], "accessKeyId": key_id, "permissions": wanted},
               token=token)
        print(f"allowed {key_id} to read, write and own bucket {name}")
    else:
        print(f"bucket {name} ready")


def main():
    namespace = CONFIG["namespace"]
    internal = ensure_secret(namespace, CONFIG["garage_secret"], {
        "rpc_secret": lambda: secrets.token_hex(32),
        "admin_token": lambda: secrets.token_hex(32),
    })
    credentials = ensure_secret(namespace, CONFIG["credentials_secret"], {
        "AWS_ACCESS_KEY_ID": lambda: "GK" + secrets.token_hex(12),
        "AWS_SECRET_ACCESS_KEY": lambda: secrets.token_hex(32),
    })
    key_id, secret_key = credentials["AWS_ACCESS_KEY_ID"], credentials["AWS_SECRET_ACCESS_KEY"]
    if not KEY_ID.match(key_id) or not SECRET_KEY.match(secret_key):
        sys.exit("Secret {}/{} does not hold Garage-shaped credentials (AWS_ACCESS_KEY_ID 'GK' + 24 hex digits, "
                 "AWS_SECRET_ACCESS_KEY 64 hex digits): delete it to have new ones generated".format(namespace, CONFIG["credentials_secret"]))
    for target in CONFIG["copies_to"]:
        copy_secret(target, CONFIG["credentials_secret"], credentials)
    token = internal["admin_token"]
    status = wait_for_garage(token)
    ensure_layout(status, token)
    ensure_key(key_id, secret_key, token)
    for bucket in CONFIG["buckets"]:
        ensure_bucket(bucket, key_id, token)
    print("object storage ready: buckets {}".format(", ".join(CONFIG["buckets"])))


if __name__ == "__main__":
    run(main)
