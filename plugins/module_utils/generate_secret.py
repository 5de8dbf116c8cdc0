# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Create a Secret with random values once; copy it to other namespaces.

The script of the Jobs the generated_secret filter returns (shipped as generate.py beside
incluster_client.py). Configuration: GEN_SECRET_CONFIG (JSON: name, namespace, keys,
copies_to, length, static, labels). Exit codes: 0 done, 1 API error (the Job retries).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import string
import sys

try:  # in the Job: beside incluster_client.py
    from incluster_client import Client, resource_path, run
except ImportError:  # imported from the collection
    from ansible_collections.researchops.mlops.plugins.module_utils.incluster_client import Client, resource_path, run

ALPHABET = string.ascii_letters + string.digits


def _say(text):
    """One line of progress on standard output (the Job's log)."""
    sys.stdout.write(text + "\n")


def random_value(length):
    return "".join(secrets.choice(ALPHABET) for _index in range(length))


def b64(value):
    return base64.b64encode(value.encode()).decode()


def secret(config, namespace, data_b64):
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": config["name"], "namespace": namespace, "labels": config["labels"]},
        "data": data_b64,
    }


def ensure_source(client, config):
    """The source Secret's data (base64), created or completed with the missing keys."""
    name, namespace = config["name"], config["namespace"]
    path = resource_path("secrets", namespace, name)
    current = client.get(path)
    if current is None:
        data = {key: b64(random_value(config["length"])) for key in config["keys"]}
        data.update({key: b64(value) for key, value in config["static"].items()})
        client.create(resource_path("secrets", namespace), secret(config, namespace, data))
        _say(f"created {namespace}/{name} with keys {', '.join(sorted(data))}")
        return data
    data = dict(current.get("data") or {})
    missing = {key: b64(random_value(config["length"])) for key in config["keys"] if key not in data}
    missing.update({key: b64(value) for key, value in config["static"].items() if key not in data})
    if missing:
        client.merge_patch(path, {"data": missing})
        data.update(missing)
        _say(f"added keys {', '.join(sorted(missing))} to {namespace}/{name}")
    else:
        _say(f"{namespace}/{name} exists, kept as is")
    return data


def copy_to(client, config, namespace, data):
    name = config["name"]
    path = resource_path("secrets", namespace, name)
    current = client.get(path)
    if current is None:
        client.create(resource_path("secrets", namespace), secret(config, namespace, data))
        _say(f"copied to {namespace}/{name}")
    elif any((current.get("data") or {}).get(key) != value for key, value in data.items()):
        client.merge_patch(path, {"data": data})
        _say(f"updated copy {namespace}/{name}")
    else:
        _say(f"copy {namespace}/{name} up to date")


def main():
    config = json.loads(os.environ["GEN_SECRET_CONFIG"])
    client = Client()
    data = ensure_source(client, config)
    wanted = list(config["keys"]) + sorted(config["static"])
    data = {key: data[key] for key in wanted}
    for namespace in config["copies_to"]:
        copy_to(client, config, namespace, data)


if __name__ == "__main__":
    run(main)
