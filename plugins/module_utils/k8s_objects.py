# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Helpers shared by the sink plugins: object identity, stable file names, ordering,
CRD and scope detection, canonical serialisation and content hashes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None

# Annotation holding the sha256 of the content the apply sink last sent.
HASH_ANNOTATION = "researchops.io/applied-hash"
# Annotation on generated-secret Jobs (and anything else that creates Secrets in the
# cluster): comma-separated <namespace>/<name>.
CREATES_SECRETS_ANNOTATION = "researchops.io/creates-secrets"

# Kinds of the Kubernetes API and of the add-ons we deploy that are cluster-scoped.
# CRDs present in the object set extend this list (see ObjectScopes).
CLUSTER_SCOPED_KINDS = frozenset(
    [
        "APIService",
        "CertificateSigningRequest",
        "ClusterIssuer",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterTrustBundle",
        "ClusterWorkflowTemplate",
        "ComponentStatus",
        "CSIDriver",
        "CSINode",
        "CustomResourceDefinition",
        "FlowSchema",
        "IngressClass",
        "IPAddress",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "RuntimeClass",
        "SelfSubjectAccessReview",
        "SelfSubjectReview",
        "SelfSubjectRulesReview",
        "ServiceCIDR",
        "StorageClass",
        "SubjectAccessReview",
        "TokenReview",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
        "VolumeAttributesClass",
        "VolumeSnapshotClass",
        "VolumeSnapshotContent",
    ]
)

# Kinds whose roll-out the sink can wait for.
ROLLOUT_KINDS = frozenset(["Deployment", "StatefulSet", "DaemonSet"])

# Apply waves: everything of a wave is applied (in parallel) before the next one starts.
# CRDs must be Established before their custom resources; Namespaces must exist before
# the objects they hold.
WAVE_FOUNDATION = 0
WAVE_REST = 1

_FILE_CHARS = re.compile(r"[^a-z0-9.]+")


class ObjectError(ValueError):
    """An object of the list is not a usable Kubernetes object."""


def api_group(api_version):
    """Group of an apiVersion: '' for the core group (v1)."""
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def check_object(obj, where="object"):
    """Fail with the object's position when it lacks apiVersion, kind or metadata.name."""
    if not isinstance(obj, dict):
        raise ObjectError(f"{where}: expected a mapping (a Kubernetes object), got {type(obj).__name__}")
    missing = [field for field in ("apiVersion", "kind") if not isinstance(obj.get(field), str) or not obj.get(field)]
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata.get("name"):
        if not (isinstance(metadata, dict) and metadata.get("generateName")):
            missing.append("metadata.name")
        else:
            raise ObjectError(f"{where} ({obj.get('kind')}): metadata.generateName is not supported by the sink; set metadata.name")
    if missing:
        raise ObjectError(f"{where}: missing {', '.join(missing)} in {json.dumps(obj, sort_keys=True, default=str)[:200]}")
    namespace = metadata.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise ObjectError(f"{where} ({obj['kind']} {metadata['name']}): metadata.namespace must be a string")


def object_key(obj):
    """Identity of an object: (group, kind, namespace, name). The version is not part of
    it: the API server stores one object whatever version it is written in."""
    metadata = obj.get("metadata") or {}
    return (api_group(obj["apiVersion"]), obj["kind"], metadata.get("namespace") or "", metadata["name"])


def object_id(obj):
    """Human-readable identity used in every message: Kind namespace/name (apiVersion)."""
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    name = metadata.get("name", "<no name>")
    where = f"{namespace}/{name}" if namespace else name
    return f"{obj.get('kind', '<no kind>')} {where} ({obj.get('apiVersion', '<no apiVersion>')})"


def is_crd(obj):
    return obj.get("kind") == "CustomResourceDefinition" and api_group(obj.get("apiVersion", "")) == "apiextensions.k8s.io"


def crd_served_kinds(crd):
    """(group, kind, scope) of a CRD object."""
    spec = crd.get("spec") or {}
    return spec.get("group", ""), (spec.get("names") or {}).get("kind", ""), spec.get("scope", "Namespaced")


class ObjectScopes:
    """Tells whether a kind is namespaced, from the built-in list and the CRDs known."""

    def __init__(self, objects=()):
        self._cluster = set(CLUSTER_SCOPED_KINDS)
        self._namespaced = set()
        for obj in objects:
            if isinstance(obj, dict) and is_crd(obj):
                self.add_crd(obj)

    def add_crd(self, crd):
        _group, kind, scope = crd_served_kinds(crd)
        if scope == "Cluster":
            self._cluster.add(kind)
            self._namespaced.discard(kind)
        else:
            self._namespaced.add(kind)
            self._cluster.discard(kind)

    def is_namespaced(self, kind):
        return kind not in self._cluster


def sanitize(part):
    """Lower-case a name part and replace every run of characters other than [a-z0-9.]
    with one dash (':' in ClusterRole names, '_' in file-unsafe names...)."""
    return _FILE_CHARS.sub("-", str(part).lower()).strip("-.") or "x"


def file_name(obj, with_group=False):
    """Stable file name of an object: <kind>-<namespace>-<name>.yaml, or <kind>-<name>.yaml
    without a namespace; with_group adds the API group to tell apart same-named kinds of
    different groups."""
    group, kind, namespace, name = object_key(obj)
    parts = [kind]
    if with_group and group:
        parts.append(group)
    if namespace:
        parts.append(namespace)
    parts.append(name)
    return "-".join(sanitize(part) for part in parts) + ".yaml"


def file_names(objects):
    """File name for each object (same order), unique within the list. Raises ObjectError
    naming both objects when two objects have the same identity."""
    seen = {}
    for index, obj in enumerate(objects):
        key = object_key(obj)
        if key in seen:
            raise ObjectError(f"{object_id(obj)} is emitted twice (items {seen[key]} and {index} of the list)")
        seen[key] = index
    names = [file_name(obj) for obj in objects]
    clashes = {name for name in names if names.count(name) > 1}
    names = [file_name(obj, with_group=True) if name in clashes else name for obj, name in zip(objects, names)]
    for name in set(names):
        if names.count(name) > 1:
            twins = [object_id(obj) for obj, other in zip(objects, names) if other == name]
            raise ObjectError(f"objects {', '.join(twins)} map to the same file name {name}: rename one of them")
    return names


def apply_wave(obj):
    return WAVE_FOUNDATION if is_crd(obj) or (obj.get("kind") == "Namespace" and obj.get("apiVersion") == "v1") else WAVE_REST


def sort_key(obj):
    group, kind, namespace, name = object_key(obj)
    return (apply_wave(obj), group, kind, namespace, name)


def sort_objects(objects):
    """Objects in apply order (waves), then by group, kind, namespace and name."""
    return sorted(objects, key=sort_key)


def _to_plain(data):
    """Copy of data with only dict/list/str/int/float/bool/None (Ansible hands over its own
    string and mapping subclasses)."""
    if isinstance(data, dict):
        return {str(key): _to_plain(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_to_plain(value) for value in data]
    if isinstance(data, bool) or data is None:
        return data
    if isinstance(data, int):
        return int(data)
    if isinstance(data, float):
        return float(data)
    return str(data)


def plain(data):
    return _to_plain(data)


def content_hash(obj):
    """sha256 of the canonical JSON of an object, its hash annotation left out."""
    data = _to_plain(obj)
    annotations = (data.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict) and HASH_ANNOTATION in annotations:
        annotations = dict(annotations)
        del annotations[HASH_ANNOTATION]
        data["metadata"] = dict(data["metadata"], annotations=annotations)
        if not annotations:
            del data["metadata"]["annotations"]
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def with_hash(obj):
    """Copy of obj carrying its content hash annotation."""
    data = _to_plain(obj)
    digest = content_hash(data)
    metadata = dict(data.get("metadata") or {})
    metadata["annotations"] = dict(metadata.get("annotations") or {}, **{HASH_ANNOTATION: digest})
    data["metadata"] = metadata
    return data


if yaml is not None:

    # libyaml when PyYAML was built with it (5x faster on the large upstream manifests).
    _Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    _BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    class _Dumper(_BaseDumper):
        """Block style for multi-line strings (scripts, config files), plain otherwise."""

        def ignore_aliases(self, data):
            return True

    def _represent_str(dumper, data):
        if "\n" in data:
            return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
        return dumper.represent_scalar("tag:yaml.org,2002:str", data)

    _Dumper.add_representer(str, _represent_str)


def to_yaml(data):
    """Canonical YAML: sorted keys, block style, no aliases, no line folding."""
    if yaml is None:  # pragma: no cover
        raise ImportError("PyYAML is required")
    return yaml.dump(_to_plain(data), Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=1 << 16)


def load_documents(text, source="<string>"):
    """Objects of a multi-document YAML text: empty documents dropped, `kind: List`
    flattened (recursively)."""
    if yaml is None:  # pragma: no cover
        raise ImportError("PyYAML is required")
    try:
        documents = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as e:
        raise ObjectError(f"{source}: not valid YAML: {e}") from e
    return flatten(documents, source)


# Folder of the parse cache under a cache directory (shared by the upstream_manifest
# lookup and k8s_validate): <cache>/parsed/<sha256 of the file's bytes>.json.
PARSE_CACHE_FOLDER = "parsed"


def write_atomic(path, data):
    """Write bytes to path through a temporary file in the same folder (readers never see
    half a file)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_documents_cached(data, source="<bytes>", cache_dir=None, digest=None):
    """load_documents of a file's bytes, with the parsed objects kept as JSON in
    <cache_dir>/parsed/<sha256 of data>.json and read from there for the same bytes
    (parsing YAML costs seconds for megabytes of CRD schemas; JSON a tenth of that).

    The key is the sha256 of the bytes parsed (digest, when the caller computed it
    already), so changed content is always parsed again. Objects that JSON cannot hold
    exactly (YAML timestamps, integer keys) are never cached; an unreadable entry is parsed
    again and rewritten; a cache that cannot be written only costs speed. No cache_dir: no
    cache. Raises ObjectError, or UnicodeDecodeError for bytes that are not UTF-8."""
    digest = digest or hashlib.sha256(data).hexdigest()
    cached = os.path.join(cache_dir, PARSE_CACHE_FOLDER, f"{digest}.json") if cache_dir else None
    if cached and os.path.isfile(cached):
        try:
            with open(cached, encoding="utf-8") as handle:
                entry = json.load(handle)
            if isinstance(entry, dict) and entry.get("source_sha256") == digest and isinstance(entry.get("objects"), list):
                return entry["objects"]
        except (OSError, ValueError):
            pass  # unreadable entry: parse the source again and rewrite it
    objects = load_documents(data.decode("utf-8"), source)
    if cached:
        try:
            text = json.dumps({"source_sha256": digest, "objects": objects}, sort_keys=True)
        except (TypeError, ValueError):
            return objects  # YAML values JSON cannot hold (timestamps): no cache
        if json.loads(text)["objects"] == objects:  # int keys would not survive JSON
            try:
                write_atomic(cached, text.encode("utf-8"))
            except OSError:
                pass
    return objects


def flatten(documents, source="<objects>"):
    objects = []
    for index, doc in enumerate(documents):
        if doc is None or doc == {}:
            continue
        if not isinstance(doc, dict):
            raise ObjectError(f"{source}: document {index} is a {type(doc).__name__}, not a Kubernetes object")
        kind = doc.get("kind")
        if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
            objects.extend(flatten(doc["items"], f"{source} (List document {index})"))
            continue
        objects.append(doc)
    return objects


def secret_refs_created(obj):
    """<namespace>/<name> Secrets an object declares it creates (annotation)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(CREATES_SECRETS_ANNOTATION, "")
    return [item.strip() for item in str(value).split(",") if item.strip()]
