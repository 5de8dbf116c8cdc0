"""Copy ca.crt of the lab CA Secret into ConfigMaps of other namespaces (in-cluster Job).

Configuration comes from CA_EXPORT_CONFIG (JSON: namespace, secret, configmap, targets,
labels). Talks to the API server with incluster_client (shipped beside this file).
Exits non-zero (the Job retries) while the CA Secret is not issued yet or on API errors.
"""

import json
import os
import sys
import time
from base64 import b64decode

from incluster_client import Client, resource_path, run


def read_ca(client, config, attempts=60, delay=5):
    path = resource_path("secrets", config["namespace"], config["secret"])
    for _attempt in range(attempts):
        secret = client.get(path)
        ca = (secret or {}).get("data", {}).get("ca.crt")
        if ca:
            return b64decode(ca).decode()
        print(f"waiting for {config['namespace']}/{config['secret']} to hold ca.crt")
        time.sleep(delay)
    sys.exit(f"{config['namespace']}/{config['secret']} has no ca.crt yet: is the CA Certificate Ready?")


def export(client, config, ca):
    name = config["configmap"]
    for namespace in config["targets"]:
        current = client.get(resource_path("configmaps", namespace, name))
        if current is None:
            client.create(resource_path("configmaps", namespace), {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace, "labels": config["labels"]},
                "data": {"ca.crt": ca},
            })
            print(f"created {namespace}/{name}")
        elif (current.get("data") or {}).get("ca.crt") != ca:
            client.merge_patch(resource_path("configmaps", namespace, name), {"data": {"ca.crt": ca}})
            print(f"updated {namespace}/{name}")
        else:
            print(f"{namespace}/{name} up to date")


def main():
    config = json.loads(os.environ["CA_EXPORT_CONFIG"])
    client = Client()
    export(client, config, read_ca(client, config))


if __name__ == "__main__":
    run(main)
