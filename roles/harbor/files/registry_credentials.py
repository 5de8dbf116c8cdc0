"""Create Harbor's registry credentials Secret once (in-cluster Job, two phases).

`prepare`: if the Secret exists, mark /work/exists; else write a random password to
/work/password (the next init container turns it into a bcrypt htpasswd line).
`store`: create the Secret with REGISTRY_PASSWD and REGISTRY_HTPASSWD from /work.
Talks to the API server with incluster_client (shipped beside this file).
"""

import base64
import json
import os
import secrets
import string
import sys

from incluster_client import Client, resource_path, run

WORK = os.environ.get("WORK_DIR", "/work")


def prepare(client, namespace, name):
    if client.get(resource_path("secrets", namespace, name)) is not None:
        open(os.path.join(WORK, "exists"), "w", encoding="utf-8").close()
        print(f"{namespace}/{name} exists, kept as is")
        return
    alphabet = string.ascii_letters + string.digits
    with open(os.path.join(WORK, "password"), "w", encoding="utf-8") as out:
        out.write("".join(secrets.choice(alphabet) for _index in range(32)))


def store(client, namespace, name):
    if os.path.exists(os.path.join(WORK, "exists")):
        return
    with open(os.path.join(WORK, "password"), encoding="utf-8") as pw, open(os.path.join(WORK, "htpasswd"), encoding="utf-8") as ht:
        password, htpasswd = pw.read(), ht.read().strip()
    if not htpasswd.startswith(os.environ["REGISTRY_USER"] + ":$2"):
        sys.exit("htpasswd did not produce a bcrypt line")
    client.create(resource_path("secrets", namespace), {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, "labels": json.loads(os.environ["SECRET_LABELS"])},
        "data": {
            "REGISTRY_PASSWD": base64.b64encode(password.encode()).decode(),
            "REGISTRY_HTPASSWD": base64.b64encode(htpasswd.encode()).decode(),
        },
    })
    print(f"created {namespace}/{name}")


def main(phase):
    {"prepare": prepare, "store": store}[phase](Client(), os.environ["SECRET_NAMESPACE"], os.environ["SECRET_NAME"])


if __name__ == "__main__":
    run(main, sys.argv[1])
