# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Strict schema validation of Kubernetes objects against the pinned upstream schemas.

Sources, first match wins:
  1. Argo Workflows kinds: io.argoproj.workflow.v1alpha1.<Kind> of argo-workflows schema.json
  2. Argo Events kinds:    io.argoproj.events.v1alpha1.<Kind> of argo-events schema.json
  3. custom resources:     openAPIV3Schema of their CRD (upstream CRD files and the CRDs
                           of the validated set itself)
  4. Kubernetes kinds:     kubernetes-validate's strict schemas of the cluster's minor version
A kind found nowhere is an error unless allow-listed. "Strict" means unknown fields are
errors: upstream JSON schemas leave additionalProperties open and CRD schemas rely on
pruning, so every object schema that lists properties is closed here, except where the
schema says x-kubernetes-preserve-unknown-fields or gives additionalProperties itself."""

from __future__ import annotations

import copy
import json
import os
import re

try:
    import jsonschema
    from referencing import Registry, Resource

    HAS_JSONSCHEMA = True
    JSONSCHEMA_IMPORT_ERROR = None
except ImportError as e:  # reported by the module with missing_required_lib
    HAS_JSONSCHEMA = False
    JSONSCHEMA_IMPORT_ERROR = e

try:
    import importlib.resources as importlib_resources

    import kubernetes_validate.utils as kubernetes_validate_utils

    HAS_KUBERNETES_VALIDATE = True
except ImportError:
    HAS_KUBERNETES_VALIDATE = False

from ansible_collections.researchops.mlops.plugins.module_utils.k8s_objects import (
    ObjectError,
    ObjectScopes,
    api_group,
    is_crd,
    load_documents_cached,
    object_id,
    object_key,
)

DEFAULT_K8S_VERSION = "1.33"
WORKFLOWS_PREFIX = "io.argoproj.workflow.v1alpha1."
EVENTS_PREFIX = "io.argoproj.events.v1alpha1."
ARGO_API_VERSION = "argoproj.io/v1alpha1"
INT_OR_STRING = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
# Kubernetes accepts plain numbers for quantities (cpu: 1); the Argo schemas say string.
QUANTITY = {"anyOf": [{"type": "string"}, {"type": "number"}]}


class ValidationIssue(dict):
    """One error: source (file), object, path (JSON path) and message."""

    def __str__(self):
        return f"{self['source']}: {self['object']}: {self['path']}: {self['message']}"


def json_path(parts):
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _close(node):
    """Close an object schema node that lists properties (in place, on a copy)."""
    if (
        isinstance(node.get("properties"), dict)
        and "additionalProperties" not in node
        and "patternProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        node["additionalProperties"] = False


def strict_json_schema(node):
    """Copy of an (Argo) JSON schema: object schemas with properties closed, IntOrString and
    Quantity accept what Kubernetes accepts, `nullable` honoured."""
    if isinstance(node, list):
        return [strict_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: strict_json_schema(value) for key, value in node.items()}
    _close(node)
    if node.pop("nullable", False) and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    return node


def argo_definitions(schema):
    """The definitions of an Argo schema.json document, strict (strict_json_schema), with
    IntOrString and Quantity accepting what Kubernetes accepts."""
    definitions = strict_json_schema(schema.get("definitions") or {})
    definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = dict(INT_OR_STRING)
    definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"] = dict(QUANTITY)
    return definitions


def strict_crd_schema(node, root=True):
    """JSON schema (draft 7) from a CRD openAPIV3Schema, structural-schema rules made strict:
    properties without x-kubernetes-preserve-unknown-fields reject unknown keys (the API
    server would prune them), x-kubernetes-int-or-string accepts both, embedded resources
    keep apiVersion/kind/metadata, nullable allows null."""
    if isinstance(node, list):
        return [strict_crd_schema(item, False) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: strict_crd_schema(sub, False) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = strict_crd_schema(value, False)
        elif key in ("allOf", "anyOf", "oneOf") and isinstance(value, list):
            # structural schemas use these for value constraints only: no closing inside
            out[key] = [_loose(item) for item in value]
        else:
            out[key] = copy.deepcopy(value)
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", INT_OR_STRING["anyOf"])
    if out.get("x-kubernetes-embedded-resource") and isinstance(out.get("properties"), dict):
        for field in ("apiVersion", "kind", "metadata"):
            out["properties"].setdefault(field, {})
    if root and isinstance(out.get("properties"), dict):
        # metadata is checked against ObjectMeta separately (CRDs only say type: object)
        out["properties"]["metadata"] = {"type": "object"}
        for field in ("apiVersion", "kind"):
            out["properties"].setdefault(field, {"type": "string"})
    if out.get("type") == "object" or "properties" in out:
        if "properties" not in out and "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields") and not root:
            # an object schema without fields: the API server prunes everything in it
            out["additionalProperties"] = False
        _close(out)
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _loose(node):
    if isinstance(node, dict):
        return {key: _loose(value) for key, value in node.items() if key != "nullable"}
    if isinstance(node, list):
        return [_loose(item) for item in node]
    return node


def normalise_k8s_version(version):
    """'v1.34.1+k3s1' -> '1.34'."""
    match = re.match(r"^v?(\d+)\.(\d+)", str(version or "").strip())
    if not match:
        raise ValueError(f"not a Kubernetes version: {version!r} (expected like v1.34.1+k3s1 or 1.34)")
    return f"{match.group(1)}.{match.group(2)}"


def _minor_tuple(version):
    major, minor = normalise_k8s_version(version).split(".")
    return int(major), int(minor)


class KubernetesSchemas:
    """kubernetes-validate's strict schemas for one minor version, loaded once."""

    def __init__(self, version):
        if not HAS_KUBERNETES_VALIDATE:
            raise ImportError("kubernetes-validate is required to validate Kubernetes kinds")
        wanted = _minor_tuple(version)
        available = sorted(kubernetes_validate_utils.all_versions(), key=_minor_tuple)
        older = [v for v in available if _minor_tuple(v) <= wanted]
        self.note = None
        if not older:
            raise ValueError(f"kubernetes-validate ships no schemas for Kubernetes {version} or older (has {available[0]}..{available[-1]})")
        self.version = older[-1]
        if _minor_tuple(self.version) != wanted:
            self.note = f"no schemas for Kubernetes {normalise_k8s_version(version)}; used {normalise_k8s_version(self.version)}"
        root = importlib_resources.files("kubernetes_validate").joinpath("kubernetes-json-schema", f"v{self.version}-local-strict")
        self._root = root
        definitions = json.loads(root.joinpath("_definitions.json").read_text(encoding="utf-8"))
        # _definitions.json carries its own $id and $schema; kind files $ref into it.
        self._registry = Resource.from_contents(definitions) @ Registry()
        self._definitions_uri = definitions["$id"]
        self._validators = {}
        self.object_meta = jsonschema.Draft202012Validator(
            {"$ref": f"{self._definitions_uri}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}, registry=self._registry
        )

    def validator(self, api_version, kind):
        """Validator for the kind, or None when kubernetes-validate has no schema for it."""
        key = (api_version, kind)
        if key not in self._validators:
            name = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
            path = self._root.joinpath(f"{kind.lower()}-{name}.json")
            if not path.is_file():
                self._validators[key] = None
            else:
                schema = json.loads(path.read_text(encoding="utf-8"))
                self._validators[key] = jsonschema.Draft202012Validator(schema, registry=self._registry)
        return self._validators[key]


class Validator:
    """Validates objects; collects ValidationIssue entries."""

    def __init__(
        self,
        k8s_version=DEFAULT_K8S_VERSION,
        workflows_schema=None,
        events_schema=None,
        crd_files=(),
        allow_kinds=(),
        require_namespace=True,
        parse_cache=None,
    ):
        if not HAS_JSONSCHEMA:
            raise ImportError(f"jsonschema is required: {JSONSCHEMA_IMPORT_ERROR}")
        self.k8s = KubernetesSchemas(normalise_k8s_version(k8s_version))
        self.notes = [self.k8s.note] if self.k8s.note else []
        self.allow_kinds = set(allow_kinds)
        self.require_namespace = require_namespace
        self._argo = {}
        for path, prefix in ((workflows_schema, WORKFLOWS_PREFIX), (events_schema, EVENTS_PREFIX)):
            if path:
                self._load_argo(path, prefix)
        self._crds = {}
        self.scopes = ObjectScopes()
        for path in crd_files:
            for obj in load_documents_cached(_read_bytes(path), path, parse_cache):
                if is_crd(obj):
                    self.add_crd(obj, path)
        self._crd_validators = {}
        self.counts = {}

    def _load_argo(self, path, prefix):
        definitions = argo_definitions(json.loads(_read(path)))
        for name, definition in definitions.items():
            if not name.startswith(prefix):
                continue
            kind = name[len(prefix):]
            props = definition.get("properties") or {}
            if "apiVersion" in props and "kind" in props and not kind.endswith("List"):
                root = {"$ref": f"#/definitions/{name}", "definitions": definitions}
                self._argo[(ARGO_API_VERSION, kind)] = (jsonschema.Draft7Validator(root), os.path.basename(os.path.dirname(os.path.dirname(path))) or path)

    def add_crd(self, crd, source):
        group = (crd.get("spec") or {}).get("group", "")
        kind = ((crd.get("spec") or {}).get("names") or {}).get("kind", "")
        for version in (crd.get("spec") or {}).get("versions") or []:
            schema = ((version.get("schema") or {}).get("openAPIV3Schema")) or None
            self._crds[(f"{group}/{version.get('name')}", kind)] = (schema, bool(version.get("served", True)), source)
        self.scopes.add_crd(crd)

    # ------------------------------------------------------------------ checks
    def _schema_for(self, obj):
        """(validator, schema name) or (None, reason)."""
        key = (obj["apiVersion"], obj["kind"])
        if key in self._argo:
            validator, source = self._argo[key]
            return validator, f"{source} schema.json"
        if key in self._crds:
            schema, served, source = self._crds[key]
            if not served:
                return None, f"{obj['apiVersion']} of {obj['kind']} is not served by its CRD ({source})"
            if key not in self._crd_validators:
                self._crd_validators[key] = jsonschema.Draft7Validator(strict_crd_schema(schema)) if schema else None
            return self._crd_validators[key], f"CRD {api_group(obj['apiVersion'])}"
        crd_versions = [version for (version, kind) in self._crds if kind == obj["kind"] and api_group(version) == api_group(obj["apiVersion"])]
        if crd_versions:
            return None, f"apiVersion {obj['apiVersion']} is not a version of the {obj['kind']} CRD (has {', '.join(sorted(crd_versions))})"
        validator = self.k8s.validator(*key)
        if validator is not None:
            return validator, f"kubernetes {normalise_k8s_version(self.k8s.version)}"
        return None, None

    def validate(self, obj, source="<objects>"):
        issues = []

        def issue(path, message):
            issues.append(ValidationIssue(source=source, object=object_id(obj), path=path, message=message))

        if isinstance(obj, dict) and "__error__" in obj:
            issues.append(ValidationIssue(source=source, object="?", path="$", message=obj["__error__"]))
            return issues
        if not isinstance(obj, dict) or not isinstance(obj.get("apiVersion"), str) or not isinstance(obj.get("kind"), str):
            issues.append(ValidationIssue(source=source, object="?", path="$", message="not a Kubernetes object (apiVersion and kind needed)"))
            return issues
        validator, name = self._schema_for(obj)
        kind_label = f"{api_group(obj['apiVersion']) or 'core'}/{obj['kind']}"
        if validator is None:
            if name:
                issue("$.apiVersion", name)
            elif obj["kind"] in self.allow_kinds or kind_label in self.allow_kinds:
                self.counts["allow-listed"] = self.counts.get("allow-listed", 0) + 1
            else:
                version = normalise_k8s_version(self.k8s.version)
                issue(
                    "$",
                    f"no schema for {obj['kind']} ({obj['apiVersion']}) in Kubernetes {version}, the Argo schemas or any known CRD; "
                    "allow-list the kind if that is expected",
                )
            return issues
        self.counts[name] = self.counts.get(name, 0) + 1
        for error in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
            issue(json_path(error.absolute_path), _message(error))
        if name.startswith("CRD "):
            metadata = obj.get("metadata")
            for error in self.k8s.object_meta.iter_errors(metadata if metadata is not None else {}):
                issue(json_path(["metadata", *error.absolute_path]), _message(error))
        metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        if not metadata.get("name"):
            issue("$.metadata.name", "required")
        namespaced = self.scopes.is_namespaced(obj["kind"])
        if self.require_namespace and namespaced and not metadata.get("namespace"):
            issue("$.metadata.namespace", f"{obj['kind']} is namespaced: set metadata.namespace (filter researchops.mlops.k8s_namespace)")
        if not namespaced and metadata.get("namespace"):
            issue("$.metadata.namespace", f"{obj['kind']} is cluster-scoped: remove metadata.namespace")
        return issues

    def validate_all(self, items):
        """items: (source, object). CRDs of the set are learnt first. Returns the issues,
        duplicates included."""
        issues, seen = [], {}
        for source, obj in items:
            if isinstance(obj, dict) and is_crd(obj):
                self.add_crd(obj, source)
        for source, obj in items:
            issues.extend(self.validate(obj, source))
            if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict) and obj["metadata"].get("name") and isinstance(obj.get("kind"), str):
                key = object_key(obj)
                if key in seen:
                    issues.append(ValidationIssue(source=source, object=object_id(obj), path="$", message=f"emitted twice (also in {seen[key]})"))
                else:
                    seen[key] = source
        return issues


def _message(error):
    if error.context:
        best = jsonschema.exceptions.best_match(error.context)
        if best is not None:
            return f"{error.message} ({best.message})" if len(error.message) < 200 else best.message
    return error.message


def _read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _read_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


def load_tree(path, parse_cache=None):
    """(relative file, object) of every YAML file under path except kustomization.yaml,
    in sorted order. parse_cache: a folder where the parsed objects of each file are kept
    as JSON, keyed by the sha256 of the file's bytes (k8s_objects.load_documents_cached):
    every object is still validated, only parsing unchanged bytes again is saved."""
    items = []
    for folder, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            if not name.endswith((".yaml", ".yml")) or name in ("kustomization.yaml", "kustomization.yml"):
                continue
            full = os.path.join(folder, name)
            rel = os.path.relpath(full, path)
            try:
                for obj in load_documents_cached(_read_bytes(full), rel, parse_cache):
                    items.append((rel, obj))
            except ObjectError as e:
                items.append((rel, {"__error__": str(e)}))
    return items


def collection_crd_files():
    """The CRD subsets the k8s_sink role's validate entry point adds (roles/k8s_sink/files/
    crds of this collection: kinds k3s installs itself), when this file sits in the
    collection's tree."""
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "roles", "k8s_sink", "files", "crds")
    return sorted(os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".yml")) if os.path.isdir(folder) else []


def validator_from_versions(versions, upstream_dir, extra_crd_files=None):
    """A Validator built from the pins of versions.yml (a mapping) and the folder holding
    the pinned upstream files: the Kubernetes version of k3s, the Argo Workflows and Argo
    Events schemas, the CRDs of Argo CD and cert-manager, plus extra_crd_files (default:
    collection_crd_files(), as playbooks/validate.yml adds them)."""
    extra_crd_files = collection_crd_files() if extra_crd_files is None else extra_crd_files
    crd_entries = [versions["mlops_argocd_manifest"], *versions["mlops_cert_manager_crds"]]
    return Validator(
        k8s_version=versions.get("mlops_k3s_version", DEFAULT_K8S_VERSION),
        workflows_schema=os.path.join(upstream_dir, versions["mlops_argo_workflows_schema"]["path"]),
        events_schema=os.path.join(upstream_dir, versions["mlops_argo_events_schema"]["path"]),
        crd_files=[os.path.join(upstream_dir, entry["path"]) for entry in crd_entries] + list(extra_crd_files),
    )
