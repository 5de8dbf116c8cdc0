# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Objects of an in-cluster Job that generates a Secret once and copies it to other namespaces."""

from __future__ import annotations

DOCUMENTATION = r"""
name: generated_secret
short_description: Objects that make the cluster generate a random Secret once
version_added: 0.1.0
description:
  - Returns the Kubernetes objects (ServiceAccount, one Role and RoleBinding per namespace
    involved, a ConfigMap holding the script, a Job) that create Secret O(_input) in
    O(namespace) with a random value for each of O(keys), B(only when that Secret does not
    exist yet), then copy the same values into every namespace of O(copies_to).
  - Randomness happens when the Job runs inside the cluster, never while rendering; the
    returned list is a pure function of the arguments, so the render sink writes the same
    files on every run and no secret value ever reaches the controller or a render file.
  - An existing Secret keeps its values; keys added to O(keys) later are generated and
    added without touching the others. Copies are created or updated to hold exactly the
    source's keys of O(keys) and O(static).
  - The Job carries the annotation C(researchops.io/creates-secrets) listing
    C(<namespace>/<name>) for the source and each copy, so validators know these Secrets
    will exist.
  - The Role grants C(get) and C(patch) on exactly this Secret name, and C(create) on
    Secrets of the namespace (Kubernetes cannot restrict C(create) by resource name).
options:
  _input:
    description: Name of the Secret (a DNS-1123 subdomain of at most 52 characters, so
      that the C(gen-secret-) objects stay within 63 characters).
    type: str
    required: true
  namespace:
    description: Namespace where the Secret is generated and the Job runs.
    type: str
    required: true
  keys:
    description: Keys that receive a random value.
    type: list
    elements: str
    default: [password]
  copies_to:
    description: Other namespaces that receive a copy with the same values.
    type: list
    elements: str
    default: []
  length:
    description: Length of each generated value; letters and digits only, so values are
      safe in URLs, connection strings and shell without quoting.
    type: int
    default: 32
  static:
    description: Fixed, non-secret keys written beside the generated ones (for example a
      user name), set when the Secret is created and kept in the copies.
    type: dict
    default: {}
  image:
    description: Container image with Python 3 (standard library only is used). The
      roles pass C(mlops_job_image) from versions.yml; the default is the same pin.
    type: str
    default: docker.io/library/python:3.13.9-alpine3.22
  labels:
    description: Extra labels put on every returned object and on the Secrets.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Objects that generate the Harbor database password, copied into the harbor namespace
  ansible.builtin.set_fact:
    __objects: >-
      {{ 'harbor-database' | researchops.mlops.generated_secret(
           namespace='postgresql', keys=['password'], copies_to=['harbor'],
           static={'username': 'harbor'}, image=mlops_job_image) }}
"""

RETURN = r"""
_value:
  description: >-
    ServiceAccount, Role and RoleBinding per namespace, ConfigMap and Job, all named
    C(gen-secret-<name>), in that order.
  type: list
  elements: dict
"""

import json
import re
from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError

from ansible_collections.researchops.mlops.plugins.module_utils import jobs

FILTER = "generated_secret"
DEFAULT_IMAGE = "docker.io/library/python:3.13.9-alpine3.22"
DEFAULT_KEYS = ("password",)
CREATES_ANNOTATION = jobs.CREATES_SECRETS_ANNOTATION
GENERATED_BY_LABEL = "researchops.io/generated-by"
PREFIX = "gen-secret-"
MAX_NAME = 63 - len(PREFIX)
MIN_LENGTH = 16
MAX_LENGTH = 256

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")

# Runs in the Job, beside the in-cluster client: a real file, linted and unit-tested.
SCRIPT_FILE = "generate_secret.py"


def _script():
    return jobs.read_script(SCRIPT_FILE)


def _fail(message):
    raise AnsibleFilterError(f"{FILTER}: {message}")


def _check_name(field, value, pattern, max_len):
    if not isinstance(value, str) or not value:
        _fail(f"{field} must be a non-empty string, got {value!r}")
    if len(value) > max_len or not pattern.match(value):
        _fail(f"{field} {value!r} is not a valid Kubernetes name (lowercase alphanumerics and '-', at most {max_len} characters)")


def _str_list(field, value):
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        _fail(f"{field} must be a list of strings, got {value!r}")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            _fail(f"{field}[{index}] must be a non-empty string, got {item!r}")
    if len(set(value)) != len(value):
        _fail(f"{field} has duplicates: {list(value)!r}")
    return list(value)


def _validate(name, namespace, keys, copies_to, length, static, image, labels):
    _check_name("name", name, _DNS_SUBDOMAIN, MAX_NAME)
    _check_name("namespace", namespace, _DNS_LABEL, 63)
    keys = _str_list("keys", keys)
    if not keys:
        _fail("keys must name at least one key to generate")
    for index, key in enumerate(keys):
        if not _SECRET_KEY.match(key):
            _fail(f"keys[{index}] {key!r} is not a valid Secret key (letters, digits, '-', '_', '.')")
    copies_to = _str_list("copies_to", copies_to)
    for index, target in enumerate(copies_to):
        _check_name(f"copies_to[{index}]", target, _DNS_LABEL, 63)
        if target == namespace:
            _fail(f"copies_to[{index}] {target!r} is the namespace the Secret is generated in")
    if isinstance(length, bool) or not isinstance(length, int):
        _fail(f"length must be an integer, got {length!r}")
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        _fail(f"length must be between {MIN_LENGTH} and {MAX_LENGTH}, got {length}")
    if not isinstance(static, Mapping):
        _fail(f"static must be a mapping of key to string, got {static!r}")
    for key, value in static.items():
        if not isinstance(key, str) or not _SECRET_KEY.match(key):
            _fail(f"static key {key!r} is not a valid Secret key")
        if key in keys:
            _fail(f"static key {key!r} is also in keys")
        if not isinstance(value, str):
            _fail(f"static.{key} must be a string, got {value!r}")
    if not isinstance(image, str) or not image or any(c.isspace() for c in image):
        _fail(f"image must be an image reference, got {image!r}")
    tag_part = image.rsplit("/", 1)[-1]
    if "@" not in tag_part and (":" not in tag_part or tag_part.endswith(":latest")):
        _fail(f"image {image!r} must be pinned to a tag other than latest or a digest")
    if not isinstance(labels, Mapping):
        _fail(f"labels must be a mapping, got {labels!r}")
    for key, value in labels.items():
        if not isinstance(key, str) or not _LABEL_KEY.match(key):
            _fail(f"labels key {key!r} is not a valid label key")
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            _fail(f"labels.{key} {value!r} is not a valid label value")
    return keys, copies_to, {str(k): v for k, v in static.items()}, dict(labels)


def generated_secret(name, namespace=None, keys=DEFAULT_KEYS, copies_to=(), length=32, static=None,
                     image=DEFAULT_IMAGE, labels=None):
    """Return the objects that generate Secret `name` in `namespace` inside the cluster."""
    if namespace is None:
        _fail("namespace is required")
    keys, copies_to, static, labels = _validate(
        name, namespace, keys, copies_to, length, {} if static is None else static, image,
        {} if labels is None else labels,
    )
    job_name = PREFIX + name
    common = {
        "app.kubernetes.io/name": "generated-secret",
        "app.kubernetes.io/instance": job_name,
        "app.kubernetes.io/managed-by": "researchops.mlops",
    }
    common.update(labels)
    secret_labels = dict(labels)
    secret_labels.update({"app.kubernetes.io/managed-by": "researchops.mlops", GENERATED_BY_LABEL: job_name})
    targets = [namespace] + copies_to

    def meta(ns, extra=None):
        out = {"name": job_name, "namespace": ns, "labels": dict(common)}
        if extra:
            out.update(extra)
        return out

    objects = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": meta(namespace),
            "automountServiceAccountToken": True,
        }
    ]
    for ns in targets:
        objects.append({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta(ns),
            "rules": [
                {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [name], "verbs": ["get", "patch"]},
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
            ],
        })
        objects.append({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta(ns),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": job_name},
            "subjects": [{"kind": "ServiceAccount", "name": job_name, "namespace": namespace}],
        })
    config = {
        "name": name,
        "namespace": namespace,
        "keys": keys,
        "copies_to": copies_to,
        "length": length,
        "static": static,
        "labels": secret_labels,
    }
    objects.append({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(namespace),
        "data": jobs.script_files({"generate.py": _script()}),
    })
    objects.append({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta(namespace, {"annotations": jobs.creates_secrets(f"{ns}/{name}" for ns in targets)}),
        "spec": {
            "backoffLimit": 6,
            "template": {
                "metadata": {"labels": dict(common)},
                "spec": {
                    "serviceAccountName": job_name,
                    "restartPolicy": "OnFailure",
                    "securityContext": jobs.job_default("pod_security_context"),
                    "containers": [{
                        "name": "generate",
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python3", "/opt/gen-secret/generate.py"],
                        "env": [
                            {"name": "GEN_SECRET_CONFIG", "value": json.dumps(config, sort_keys=True)},
                            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
                        ],
                        "resources": jobs.job_default("resources"),
                        "securityContext": jobs.job_default("container_security_context"),
                        "volumeMounts": [{"name": "script", "mountPath": "/opt/gen-secret", "readOnly": True}],
                    }],
                    "volumes": [{"name": "script", "configMap": {"name": job_name}}],
                },
            },
        },
    })
    return objects


class FilterModule:
    def filters(self):
        return {"generated_secret": generated_secret}
