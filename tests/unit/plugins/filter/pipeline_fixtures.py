"""Inputs shared by the pipeline filter tests: the example spec, platform values as the
pipelines role computes them from platform.yml defaults, and the pinned images of
versions.yml."""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[4]
EXAMPLE_SPEC = REPO_ROOT / "examples" / "mnist" / "pipeline.yml"
VERSIONS = REPO_ROOT / "roles" / "mlops" / "defaults" / "main" / "versions.yml"

PLATFORM = {
    "namespace": "mlops-pipelines",
    "argocd_namespace": "argocd",
    "argocd_project": "mlops",
    "registry_host": "harbor.lab.example.internal",
    "registry_project": "mlops",
    "registry_cache_project": "mlops-cache",
    "registry_push_secret": "harbor-ci-robot",
    "s3_endpoint": "http://s3.object-storage.svc.cluster.local",
    "s3_region": "us-east-1",
    "s3_credentials_secret": "s3-credentials",
    "datasets_bucket": "datasets",
    "models_bucket": "models",
    "ca_configmap": "researchops-ca",
    "webhook_host": "hooks.lab.example.internal",
}


def example_spec():
    return yaml.safe_load(EXAMPLE_SPEC.read_text(encoding="utf-8"))


def platform():
    return copy.deepcopy(PLATFORM)


def images():
    return dict(yaml.safe_load(VERSIONS.read_text(encoding="utf-8"))["mlops_pipelines_images"])


def set_path(data, dotted, value):
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def delete_path(data, dotted):
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node[part]
    del node[last]
