# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Validation of pipeline specs against spec_schema.json, defaults, and the shared context.

The JSON schema shipped beside this file is the one source of truth: validation, defaults
and docs/pipeline-spec.md all come from it. Errors are raised as PipelineSpecError with
the field path (``pipelines[0].ct.gpu.count``) and what is allowed; the filter turns them
into AnsibleFilterError."""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from ansible_collections.researchops.mlops.plugins.module_utils.names import (
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    HARBOR_PROJECT,
    S3_BUCKET,
    SERVER_HOST,
)

try:
    from jsonschema import Draft202012Validator
except ImportError as imp_exc:  # reported by the filter with a clear message
    Draft202012Validator = None
    JSONSCHEMA_IMPORT_ERROR = imp_exc
else:
    JSONSCHEMA_IMPORT_ERROR = None

SCHEMA_PATH = Path(__file__).resolve().with_name("spec_schema.json")

LABEL_PIPELINE = "researchops.io/pipeline"
LABEL_STAGE = "researchops.io/stage"
ANNOTATION_MODEL_VERSION = "researchops.io/model-version"
MANAGED_BY = {"app.kubernetes.io/managed-by": "researchops.mlops"}

# Values every pipeline needs from the platform (roles/mlops platform.yml); the
# role passes them, the filter has no defaults of its own for them.
PLATFORM_KEYS = {
    "namespace": "namespace of the pipelines (mlops_namespaces.pipelines)",
    "argocd_namespace": "namespace of Argo CD (mlops_namespaces.argocd)",
    "argocd_project": "Argo CD AppProject of the serving Applications",
    "registry_host": "registry host name (mlops_registry_host)",
    "registry_project": "registry project of pipeline images (mlops_registry_project)",
    "registry_cache_project": "registry project of Kaniko layer caches (mlops_registry_cache_project)",
    "registry_push_secret": "dockerconfigjson Secret used to push and pull (mlops_registry_push_secret)",
    "s3_endpoint": "S3 endpoint URL seen from the cluster (mlops_s3_endpoint)",
    "s3_region": "S3 region (mlops_s3_region)",
    "s3_credentials_secret": "Secret with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (mlops_s3_credentials_secret)",
    "datasets_bucket": "bucket of dataset versions (mlops_s3_buckets.datasets)",
    "models_bucket": "bucket of model versions (mlops_s3_buckets.models)",
    "ca_configmap": "ConfigMap with the platform CA under key ca.crt (mlops_ca_configmap)",
    "webhook_host": "host name of the webhook Ingress (e.g. hooks.<mlops_domain>)",
}

# Images the generated workflows run, pinned in versions.yml ("Pipeline images").
IMAGE_KEYS = {
    "git": "git client with a POSIX shell (clone/checkout steps)",
    "kaniko": "Kaniko executor (image build)",
    "awscli": "AWS CLI v2 (S3 transfers, serving model download)",
    "kubectl": "kubectl of the Kubernetes project, no shell (CD steps holding the CD ServiceAccount)",
    "python": "Python, Docker Official Image (CD plan and smoke steps, no credentials)",
    "crane": "crane of go-containerregistry (push of the built images, multi-arch manifest list)",
}

_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s]*)?\Z")
# <host>[:port]/<path>:<tag> or ...@sha256:<64 hex>; tag must not be "latest".
_IMAGE = re.compile(
    r"^(?P<repo>[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]{1,2}[a-z0-9]+)*)*)"
    r"(:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(@sha256:(?P<digest>[a-f0-9]{64}))?\Z"
)


# Bounds that keep every generated object far below the API server's 1.5 MiB limit and
# every walk over the input safe (no recursion deeper than this).
MAX_DEPTH = 32
MAX_STRING = 4096
MAX_SMOKE_BODY = 65536
# Control characters: a trailing newline or a NUL in a name, a ref or a value never means
# what the author wanted.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_JSON_TYPES = {"object": "mapping", "array": "list", "boolean": "boolean (true/false)",
               "integer": "integer", "number": "number", "string": "string"}


class PipelineSpecError(Exception):
    """A bad spec, platform value or image: `path` is the field, `message` what is wrong."""

    def __init__(self, path, message):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@lru_cache(maxsize=1)
def load_schema():
    """The pipeline spec JSON schema shipped in the collection."""
    with SCHEMA_PATH.open(encoding="utf-8") as handle:
        return json.load(handle)


def to_plain(value):
    """Deep copy of `value` as plain dict/list/str/int/float/bool/None (Ansible's tagged
    and lazy containers included), so validation and output see ordinary Python types."""
    if isinstance(value, Mapping):
        return {str(key) if isinstance(key, str) else key: to_plain(item) for key, item in value.items()}
    if isinstance(value, (str, bytes)):
        return str(value) if isinstance(value, str) else value
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Sequence):
        return [to_plain(item) for item in value]
    return value


def _join(path, part):
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else str(part)


def _path_of(prefix, error):
    path = prefix
    for part in error.absolute_path:
        path = _join(path, part)
    return path


def _type_name(value):
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    if value is None:
        return "null"
    return type(value).__name__


def _describe(schema):
    text = schema.get("description", "")
    return re.split(r"(?<=[a-z0-9)'])\. (?=[A-Z])", text)[0].rstrip(".") if text else ""


def _error_to_spec_error(prefix, error):
    """One jsonschema ValidationError -> PipelineSpecError with a readable message."""
    path = _path_of(prefix, error)
    kind = error.validator
    value = error.instance
    schema = error.schema
    if kind == "required":
        missing = [key for key in error.validator_value if key not in value]
        key = missing[0] if missing else error.validator_value[0]
        sub = schema.get("properties", {}).get(key, {})
        hint = _describe(sub)
        return PipelineSpecError(_join(path, key), "is required" + (f" ({hint})" if hint else ""))
    if kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(str(key) for key in value if key not in schema.get("properties", {}))
        return PipelineSpecError(
            _join(path, extra[0]) if extra else path,
            f"unknown key (allowed keys: {', '.join(allowed)})",
        )
    if kind == "type":
        wanted = _JSON_TYPES.get(error.validator_value, error.validator_value)
        return PipelineSpecError(path, f"must be {'an' if wanted[0] in 'aeiou' else 'a'} {wanted}, got {_type_name(value)} {value!r}")
    if kind == "enum":
        return PipelineSpecError(
            path, f"{value!r} is not allowed (allowed: {', '.join(map(str, error.validator_value))})")
    if kind == "pattern":
        hint = _describe(schema)
        return PipelineSpecError(
            path, f"{value!r} is not valid: {hint or 'must match ' + error.validator_value}"
            f" (pattern {error.validator_value})")
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        low = schema.get("minimum")
        high = schema.get("maximum")
        bounds = f"between {low} and {high}" if low is not None and high is not None else (
            f"at least {low}" if low is not None else f"at most {high}")
        return PipelineSpecError(path, f"{value!r} is out of range: must be {bounds}")
    if kind == "minItems":
        return PipelineSpecError(path, f"must hold at least {error.validator_value} item(s), got {len(value)}")
    if kind == "maxItems":
        return PipelineSpecError(path, f"must hold at most {error.validator_value} item(s), got {len(value)}")
    if kind == "uniqueItems":
        return PipelineSpecError(path, f"items must be unique, got {value!r}")
    if kind == "minProperties":
        return PipelineSpecError(path, f"must not be empty (at least {error.validator_value} key)")
    if kind in ("maxLength", "minLength"):
        return PipelineSpecError(
            path, f"{value!r} has {len(value)} characters, must have {'at most' if kind == 'maxLength' else 'at least'} "
            f"{error.validator_value}")
    return PipelineSpecError(path, error.message)


def _check_string(text, path, limit=MAX_STRING):
    if len(text) > limit:
        raise PipelineSpecError(path, f"is {len(text)} characters long, at most {limit} allowed")
    bad = _CONTROL.search(text)
    if bad:
        raise PipelineSpecError(path, f"contains the control character {bad.group()!r} (newlines, tabs and NUL are not allowed)")
    if "{{" in text:
        raise PipelineSpecError(
            path, f"{text[:80]!r} contains '{{{{': Argo Workflows would substitute it as an expression (not allowed)")


def check_plain_json(value, path):
    """Refuse what JSON cannot carry or what would break a later step, before anything
    recursive looks at `value`: nesting deeper than MAX_DEPTH, non-string keys, types
    other than mapping/list/string/number/boolean/null (YAML dates, bytes, sets),
    NaN/Infinity, over-long strings, control characters and '{{'. Iterative, so a deeply
    nested input is refused instead of raising RecursionError."""
    stack = [(value, path, 0)]
    while stack:
        node, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise PipelineSpecError(where, f"is nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, Mapping):
            for key in node:
                if not isinstance(key, str):
                    raise PipelineSpecError(
                        where, f"keys must be strings, got {_type_name(key)} key {key!r} (quote it in YAML)")
                _check_string(key, _join(where, key))
                stack.append((node[key], _join(where, key), depth + 1))
        elif isinstance(node, str):
            _check_string(node, where)
        elif isinstance(node, bool) or node is None or isinstance(node, int):
            continue
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise PipelineSpecError(where, f"must be a finite number, got {node!r}")
        elif isinstance(node, Sequence) and not isinstance(node, (bytes, bytearray)):
            for index, item in enumerate(node):
                stack.append((item, _join(where, index), depth + 1))
        else:
            raise PipelineSpecError(
                where, f"must be a JSON value (string, number, boolean, null, list or mapping), got "
                f"{type(node).__name__} {node!r} (quote dates and times in YAML)")


def _error_key(error):
    # Deepest, then first by path, so the most specific error is reported first and the
    # report is the same on every run.
    return (-len(error.absolute_path), [str(part) for part in error.absolute_path], error.validator)


def apply_defaults(schema, instance):
    """Fill the schema's `default` values into `instance` (in place), recursively."""
    if not isinstance(instance, dict) or schema.get("type") != "object":
        if isinstance(instance, list) and isinstance(schema.get("items"), dict):
            for item in instance:
                apply_defaults(schema["items"], item)
        return instance
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            apply_defaults(sub, instance[key])
    return instance


def _unique_names(path, items):
    seen = {}
    for index, item in enumerate(items):
        name = item["name"]
        if name in seen:
            raise PipelineSpecError(
                f"{path}[{index}].name", f"duplicate name {name!r} (already set by {path}[{seen[name]}])")
        seen[name] = index


def _semantic_checks(path, spec):
    """Rules JSON schema cannot express."""
    _unique_names(f"{path}.ci.build_args", spec["ci"]["build_args"])
    _unique_names(f"{path}.ct.env", spec["ct"]["env"])
    for index, item in enumerate(spec["ct"]["env"]):
        if item["name"].startswith("AWS_"):
            raise PipelineSpecError(
                f"{path}.ct.env[{index}].name",
                f"{item['name']!r} is reserved (AWS_* variables come from the S3 credentials Secret)")
    repo = spec["repo"]
    if not repo["branches"] and not repo["tags"]:
        raise PipelineSpecError(
            f"{path}.repo.branches", "is empty and repo.tags is false: no push would ever start the pipeline")
    for index, branch in enumerate(repo["branches"]):
        if "***" in branch or branch.startswith(("/", ".")) or branch.endswith(("/", ".", ".lock")) or \
                "//" in branch or ".." in branch:
            raise PipelineSpecError(f"{path}.repo.branches[{index}]", f"{branch!r} is not a valid git branch name or glob")
    body = spec["cd"]["smoke"]["body"]
    size = len(json.dumps(body, separators=(",", ":"), allow_nan=False))
    if size > MAX_SMOKE_BODY:
        raise PipelineSpecError(f"{path}.cd.smoke.body", f"is {size} bytes as JSON, at most {MAX_SMOKE_BODY} allowed")
    url = spec["repo"]["url"]
    if not url.startswith("https://") and not spec["repo"]["credentials_secret"]:
        raise PipelineSpecError(
            f"{path}.repo.credentials_secret",
            f"is required for the ssh URL {url!r} (a kubernetes.io/ssh-auth Secret with key ssh-privatekey)")
    if url.rstrip("/").endswith("/") or url.endswith(".git.git"):
        raise PipelineSpecError(f"{path}.repo.url", f"{url!r} is not a repository URL")
    webhook = spec["webhook"]
    if webhook["provider"] == "gitlab" and "gitlab" not in webhook:
        raise PipelineSpecError(
            f"{path}.webhook.gitlab", "is required for provider gitlab (base_url and access_token: Argo Events "
            "checks the X-Gitlab-Token only for a hook it created with the API)")
    if webhook["provider"] != "gitlab" and "gitlab" in webhook:
        raise PipelineSpecError(f"{path}.webhook.gitlab", f"applies to provider gitlab only (provider is {webhook['provider']!r})")
    if repo["known_hosts_secret"] and url.startswith("https://"):
        raise PipelineSpecError(f"{path}.repo.known_hosts_secret", "applies to ssh repository URLs only")
    for part in spec["repo"]["path"].split("/") + spec["repo"]["deploy_path"].split("/") + \
            spec["repo"]["dockerfile"].split("/") + spec["repo"]["params_file"].split("/"):
        if part == "..":
            raise PipelineSpecError(f"{path}.repo", "paths must stay inside the repository ('..' is not allowed)")


def validate_specs(specs, prefix="pipelines"):
    """Validate a list of pipeline specs; return them with defaults filled in.

    Raises PipelineSpecError naming the first bad field of the first bad spec."""
    if JSONSCHEMA_IMPORT_ERROR is not None:
        raise PipelineSpecError(prefix, f"the Python library jsonschema is required: {JSONSCHEMA_IMPORT_ERROR}")
    if isinstance(specs, Mapping):
        specs = [specs]
    if isinstance(specs, (str, bytes)) or not isinstance(specs, Sequence):
        raise PipelineSpecError(prefix, f"must be a list of pipeline specs (mappings), got {_type_name(specs)}")
    schema = load_schema()
    validator = Draft202012Validator(schema)
    result = []
    names = {}
    for index, raw in enumerate(specs):
        path = f"{prefix}[{index}]"
        check_plain_json(raw, path)
        spec = to_plain(raw)
        if not isinstance(spec, dict):
            raise PipelineSpecError(path, f"must be a mapping (a pipeline spec), got {_type_name(spec)}")
        errors = sorted(validator.iter_errors(spec), key=_error_key)
        if errors:
            raise _error_to_spec_error(path, errors[0])
        spec = apply_defaults(schema, spec)
        _semantic_checks(path, spec)
        if spec["name"] in names:
            raise PipelineSpecError(
                f"{path}.name", f"duplicate pipeline name {spec['name']!r} (already used by {prefix}[{names[spec['name']]}])")
        names[spec["name"]] = index
        result.append(spec)
    _check_collisions(prefix, result)
    return result


def _check_collisions(prefix, specs):
    """Refuse two pipelines that would write the same object or image: the same serving
    Deployment or Service, webhook Secret, image repository, or a Service named like
    another pipeline's webhook EventSource Service."""
    claims = {}

    def claim(what, value, field):
        if value in claims.setdefault(what, {}):
            raise PipelineSpecError(field, f"{what} {value!r} is already used by {claims[what][value]}")
        claims[what][value] = field

    for index, spec in enumerate(specs):
        path = f"{prefix}[{index}]"
        name = spec["name"]
        claim("serving Deployment", spec["cd"]["deployment"] or name, f"{path}.cd.deployment")
        claim("Service", f"{name}-{spec['webhook']['provider']}-eventsource-svc", f"{path}.name")
        claim("image repository", spec["ci"]["image"] or name, f"{path}.ci.image")
        claim("image repository", (spec["ci"]["image"] or name) + "-serve", f"{path}.ci.image")
        claim("Secret", spec["webhook"]["secret"]["name"] or f"{name}-webhook", f"{path}.webhook.secret.name")
    for index, spec in enumerate(specs):
        path = f"{prefix}[{index}]"
        claim("Service", spec["cd"]["service"] or spec["name"], f"{path}.cd.service")
        if spec["repo"]["credentials_secret"] and spec["repo"]["credentials_secret"] in claims["Secret"]:
            raise PipelineSpecError(
                f"{path}.repo.credentials_secret",
                f"{spec['repo']['credentials_secret']!r} is the webhook Secret of "
                f"{claims['Secret'][spec['repo']['credentials_secret']]} (the pipelines role writes it)")


def validate_platform(platform):
    """Check the platform values the role passes; return them as a plain dict."""
    if not isinstance(platform, Mapping):
        raise PipelineSpecError("platform", f"must be a mapping, got {_type_name(platform)}")
    platform = to_plain(platform)
    for key, what in PLATFORM_KEYS.items():
        value = platform.get(key)
        if not isinstance(value, str) or not value:
            raise PipelineSpecError(f"platform.{key}", f"is required: {what} (a non-empty string), got {value!r}")
    unknown = sorted(set(platform) - set(PLATFORM_KEYS))
    if unknown:
        raise PipelineSpecError(f"platform.{unknown[0]}", f"unknown key (allowed keys: {', '.join(sorted(PLATFORM_KEYS))})")
    for key in ("namespace", "argocd_namespace", "argocd_project", "registry_push_secret",
                "s3_credentials_secret", "ca_configmap"):
        pattern = DNS1123_LABEL if key.endswith("namespace") else DNS1123_SUBDOMAIN
        if not pattern.match(platform[key]) or len(platform[key]) > 253:
            raise PipelineSpecError(f"platform.{key}", f"{platform[key]!r} is not a valid Kubernetes name")
    for key in ("registry_host", "webhook_host"):
        if not SERVER_HOST.match(platform[key]):
            raise PipelineSpecError(f"platform.{key}", f"{platform[key]!r} is not a host name (lowercase DNS name)")
    for key in ("registry_project", "registry_cache_project"):
        if not HARBOR_PROJECT.match(platform[key]):
            raise PipelineSpecError(f"platform.{key}", f"{platform[key]!r} is not a registry project name")
    for key in ("datasets_bucket", "models_bucket"):
        if not S3_BUCKET.match(platform[key]):
            raise PipelineSpecError(f"platform.{key}", f"{platform[key]!r} is not an S3 bucket name")
    if not _URL.match(platform["s3_endpoint"]):
        raise PipelineSpecError("platform.s3_endpoint", f"{platform['s3_endpoint']!r} is not an http(s) URL")
    return platform


def validate_images(images):
    """Check the pinned pipeline images (versions.yml); return them as a plain dict."""
    if not isinstance(images, Mapping):
        raise PipelineSpecError("images", f"must be a mapping, got {_type_name(images)}")
    images = to_plain(images)
    for key, what in IMAGE_KEYS.items():
        ref = images.get(key)
        if not isinstance(ref, str) or not ref:
            raise PipelineSpecError(f"images.{key}", f"is required: {what}, pinned in versions.yml, got {ref!r}")
        match = _IMAGE.match(ref)
        if not match:
            raise PipelineSpecError(f"images.{key}", f"{ref!r} is not an image reference")
        if not match.group("digest") and (not match.group("tag") or match.group("tag") == "latest"):
            raise PipelineSpecError(
                f"images.{key}", f"{ref!r} must be pinned to a tag other than 'latest' or to a digest")
    unknown = sorted(set(images) - set(IMAGE_KEYS))
    if unknown:
        raise PipelineSpecError(f"images.{unknown[0]}", f"unknown key (allowed keys: {', '.join(sorted(IMAGE_KEYS))})")
    return images


class Pipeline:
    """One validated spec with the platform values and images: names shared by the stages."""

    def __init__(self, spec, platform, images):
        self.spec = spec
        self.platform = platform
        self.images = images
        self.name = spec["name"]
        self.namespace = platform["namespace"]
        self.image_repository = "/".join(
            [platform["registry_host"], platform["registry_project"], spec["ci"]["image"] or self.name])
        self.serve_repository = self.image_repository + "-serve"
        self.cache_repository = "/".join(
            [platform["registry_host"], platform["registry_cache_project"], spec["ci"]["image"] or self.name])
        self.deployment = spec["cd"]["deployment"] or self.name
        self.service = spec["cd"]["service"] or self.name
        self.application = f"{self.name}-serving"
        self.webhook_secret = spec["webhook"]["secret"]["name"] or f"{self.name}-webhook"
        self.webhook_secret_key = spec["webhook"]["secret"]["key"]
        self.provider = spec["webhook"]["provider"]
        self.webhook_eventsource = f"{self.name}-{self.provider}"
        self.workflows_eventsource = f"{self.name}-workflows"
        repo_path = spec["repo"]["path"]
        self.repo_subdir = "" if repo_path == "." else repo_path
        self.context_dir = "/work/src" + (f"/{self.repo_subdir}" if self.repo_subdir else "")
        self.deploy_path = "/".join(p for p in (self.repo_subdir, spec["repo"]["deploy_path"]) if p)
        self.models_prefix = f"s3://{platform['models_bucket']}/{self.name}"

    def sa(self, stage):
        """ServiceAccount (and Role) name of a stage."""
        return f"{self.name}-{stage}"

    def template(self, stage):
        """WorkflowTemplate name of a stage."""
        return f"{self.name}-{stage}"

    def labels(self, stage=None):
        labels = {"app.kubernetes.io/part-of": "researchops-pipelines", LABEL_PIPELINE: self.name}
        labels.update(MANAGED_BY)
        if stage:
            labels[LABEL_STAGE] = stage
        return labels

    def meta(self, name, stage=None, namespace=None):
        return {"name": name, "namespace": namespace or self.namespace, "labels": self.labels(stage)}

    def github_repository(self):
        """(owner, name) of the repository URL, for the GitHub webhook filter."""
        url = self.spec["repo"]["url"]
        if url.startswith(("https://", "ssh://")):
            path = url.split("://", 1)[1].split("/", 1)[1]
        else:
            path = url.split(":", 1)[1]
        parts = path.rstrip("/").split("/")
        name = parts[-1][:-4] if parts[-1].endswith(".git") else parts[-1]
        return "/".join(parts[:-1]), name
