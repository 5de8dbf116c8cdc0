"""Create Harbor's registry credentials Secret once (in-cluster Job, two phases).

`prepare`: if the Secret exists, mark /work/exists; else write a random password to
/work/password (the next init container turns it into a bcrypt htpasswd line).
`store`: create the Secret with REGISTRY_PASSWD and REGISTRY_HTPASSWD from /work.
Standard library only; talks to the API server with the pod's service account.
"""
import base64
import json
import os
import secrets
import ssl
import string
import sys
import urllib.error
import urllib.request

SA = "/var/run/secrets/kubernetes.io/serviceaccount"
API = "https://%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
NAMESPACE, NAME = os.environ["SECRET_NAMESPACE"], os.environ["SECRET_NAME"]
LABELS = json.loads(os.environ["SECRET_LABELS"])
PATH = "/api/v1/namespaces/%s/secrets" % NAMESPACE
CTX = ssl.create_default_context(cafile=SA + "/ca.crt")
with open(SA + "/token", encoding="utf-8") as token_file:
    TOKEN = token_file.read().strip()


def call(method, path, body=None):
    req = urllib.request.Request(API + path, data=None if body is None else json.dumps(body).encode(), method=method)
    req.add_header("Authorization", "Bearer " + TOKEN)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, context=CTX, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return 404
        sys.exit("%s %s failed: HTTP %s %s" % (method, path, err.code, err.read()[:500]))


def prepare():
    if call("GET", PATH + "/" + NAME) == 200:
        open("/work/exists", "w", encoding="utf-8").close()
        print("%s/%s exists, kept as is" % (NAMESPACE, NAME))
        return
    alphabet = string.ascii_letters + string.digits
    with open("/work/password", "w", encoding="utf-8") as out:
        out.write("".join(secrets.choice(alphabet) for _unused in range(32)))


def store():
    if os.path.exists("/work/exists"):
        return
    with open("/work/password", encoding="utf-8") as pw, open("/work/htpasswd", encoding="utf-8") as ht:
        password, htpasswd = pw.read(), ht.read().strip()
    if not htpasswd.startswith(os.environ["REGISTRY_USER"] + ":$2"):
        sys.exit("htpasswd did not produce a bcrypt line")
    call("POST", PATH, {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": LABELS},
        "data": {
            "REGISTRY_PASSWD": base64.b64encode(password.encode()).decode(),
            "REGISTRY_HTPASSWD": base64.b64encode(htpasswd.encode()).decode(),
        },
    })
    print("created %s/%s" % (NAMESPACE, NAME))


{"prepare": prepare, "store": store}[sys.argv[1]]()
