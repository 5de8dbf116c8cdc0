# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Parts every in-cluster Job of the platform shares, in one place: the pod and
container hardening, the small resource budget, the annotation naming the Secrets a Job
creates, and the in-cluster API client shipped beside each Job's script."""

from __future__ import annotations

import copy
import os

from ansible_collections.researchops.mlops.plugins.module_utils.k8s_objects import CREATES_SECRETS_ANNOTATION

# Restricted Pod Security Standard: no root, default seccomp profile.
POD_SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 65534,
    "runAsGroup": 65534,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
# A script that talks to an API: small and bounded.
RESOURCES = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}}

JOB_DEFAULTS = {
    "pod_security_context": POD_SECURITY_CONTEXT,
    "container_security_context": CONTAINER_SECURITY_CONTEXT,
    "resources": RESOURCES,
}

# The client module, a real file linted and unit-tested like any other; a Job's script
# imports it as `incluster_client` from its ConfigMap.
CLIENT_FILE = "incluster_client.py"
CLIENT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), CLIENT_FILE)


def job_default(part):
    """A deep copy of one shared part (a key of JOB_DEFAULTS); KeyError when unknown."""
    return copy.deepcopy(JOB_DEFAULTS[part])


def creates_secrets(refs):
    """The annotation naming the Secrets (`<namespace>/<name>`) an object creates at run time."""
    return {CREATES_SECRETS_ANNOTATION: ",".join(refs)}


def client_source():
    return read_script(CLIENT_FILE)


def script_files(scripts):
    """ConfigMap data of a Job: its scripts ({file name: source}) plus the client module."""
    data = dict(scripts)
    data[CLIENT_FILE] = client_source()
    return data


def read_script(name):
    """Source of a Job script kept in module_utils (the generated_secret filter's)."""
    with open(os.path.join(os.path.dirname(CLIENT_PATH), name), encoding="utf-8") as handle:
        return handle.read()
