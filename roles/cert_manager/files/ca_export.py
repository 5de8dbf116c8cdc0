"""Copy ca.crt of the lab CA Secret into ConfigMaps of other namespaces (in-cluster Job).

Configuration comes from CA_EXPORT_CONFIG (JSON: namespace, secret, configmap, targets,
labels). Standard library only; talks to the API server with the pod's service account.
Exits non-zero (the Job retries) while the CA Secret is not issued yet or on API errors.
"""
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from base64 import b64decode

SA = "/var/run/secrets/kubernetes.io/serviceaccount"
API = "https://%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
CONFIG = json.loads(os.environ["CA_EXPORT_CONFIG"])
CTX = ssl.create_default_context(cafile=SA + "/ca.crt")
with open(SA + "/token", encoding="utf-8") as token_file:
    TOKEN = token_file.read().strip()


def call(method, path, body=None, content_type="application/json"):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(API + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + TOKEN)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, context=CTX, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return 404, None
        sys.exit("%s %s failed: HTTP %s %s" % (method, path, err.code, err.read()[:500]))


def read_ca():
    path = "/api/v1/namespaces/%s/secrets/%s" % (CONFIG["namespace"], CONFIG["secret"])
    for _unused in range(60):
        status, secret = call("GET", path)
        ca = (secret or {}).get("data", {}).get("ca.crt") if status == 200 else None
        if ca:
            return b64decode(ca).decode()
        print("waiting for %s/%s to hold ca.crt" % (CONFIG["namespace"], CONFIG["secret"]))
        time.sleep(5)
    sys.exit("%s/%s has no ca.crt yet: is the CA Certificate Ready?" % (CONFIG["namespace"], CONFIG["secret"]))


def main():
    ca = read_ca()
    name = CONFIG["configmap"]
    for namespace in CONFIG["targets"]:
        base = "/api/v1/namespaces/%s/configmaps" % namespace
        status, current = call("GET", base + "/" + name)
        if status == 404:
            call("POST", base, {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace, "labels": CONFIG["labels"]},
                "data": {"ca.crt": ca},
            })
            print("created %s/%s" % (namespace, name))
        elif (current.get("data") or {}).get("ca.crt") != ca:
            call("PATCH", base + "/" + name, {"data": {"ca.crt": ca}}, "application/merge-patch+json")
            print("updated %s/%s" % (namespace, name))
        else:
            print("%s/%s up to date" % (namespace, name))


main()
