# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Apply sink: server-side apply of an object list in ordered, parallel waves.

Waves: CRDs and Namespaces, then (CRDs waited Established) everything else. Objects
carry the annotation researchops.io/applied-hash (sha256 of the object as given). Before
each wave the sink LISTs each resource type once per namespace (full objects, one request
per type and namespace instead of one GET per object) and compares every field of the
object it is about to send with the live object (drift check). An object is left alone
only when the live hash matches AND every field the sink sends has the same value live
("verified equal"); anything else is sent with server-side apply and counts as changed
only when the API server stored a change (its resourceVersion moved; in check mode, when
the dry-run result differs from the live object).

The Applier talks to the cluster through an adapter (ApiAdapter over kubernetes.core's
dynamic client in production, an in-memory fake in the unit tests)."""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.researchops.mlops.plugins.module_utils.k8s_objects import (
    HASH_ANNOTATION,
    ROLLOUT_KINDS,
    ObjectError,
    api_group,
    apply_wave,
    check_object,
    flatten,
    is_crd,
    load_documents,
    object_id,
    object_key,
    plain,
    with_hash,
)

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.waiter import RESOURCE_PREDICATES, Waiter, custom_condition, exists
except ImportError:  # the module reports the missing kubernetes.core / kubernetes library
    CoreException = Exception
    RESOURCE_PREDICATES, Waiter, custom_condition, exists = {}, None, None, None

ESTABLISHED = {"type": "Established", "status": "True"}

# Options of researchops.mlops.k8s_apply besides kubernetes.core's authentication options
# (module and action plugin).
ARGUMENT_SPEC = {
    "objects": {"type": "list", "elements": "dict", "default": []},
    "src": {"type": "list", "elements": "path", "default": []},
    "crds_from": {"type": "list", "elements": "dict", "default": []},
    "field_manager": {"type": "str", "default": "researchops"},
    "force_conflicts": {"type": "bool", "default": True},
    "workers": {"type": "int", "default": 8},
    "skip_unchanged": {"type": "bool", "default": True},
    "wait": {"type": "bool", "default": False},
    "wait_for": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "apiVersion": {"type": "str", "aliases": ["api_version"]},
            "kind": {"type": "str"},
            "name": {"type": "str"},
            "namespace": {"type": "str"},
            "condition": {"type": "dict"},
        },
    },
    "wait_timeout": {"type": "int", "default": 600},
    "wait_sleep": {"type": "int", "default": 2},
}

# Fields the API server adds, left out of diffs.
_SERVER_FIELDS = ("managedFields", "resourceVersion", "uid", "generation", "creationTimestamp")
_HASH_PATH = f"metadata.annotations.{HASH_ANNOTATION}"
# Parts of an object that server-side apply of the main resource does not set.
_NOT_APPLIED = ("status",)


class ApplyError(Exception):
    """One or more objects failed; the message names each object and the API's reason."""


class UnknownResource(Exception):
    """The API server does not serve this apiVersion/kind (yet)."""


def api_message(error):
    """The useful part of an API error: the Status message when there is one."""
    body = getattr(error, "body", None)
    if body:
        try:
            status = json.loads(body)
            if isinstance(status, dict) and status.get("message"):
                return f"{getattr(error, 'status', '')} {status.get('reason', '')}: {status['message']}".strip()
        except (TypeError, ValueError):
            pass
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def clean(obj):
    """Object without server bookkeeping, for diffs."""
    if not obj:
        return {}
    obj = plain(obj)
    metadata = obj.get("metadata") or {}
    for field in _SERVER_FIELDS:
        metadata.pop(field, None)
    obj.pop("status", None)
    if obj.get("kind") == "Secret":
        for field in ("data", "stringData"):
            if isinstance(obj.get(field), dict):
                obj[field] = {key: "<hidden>" for key in obj[field]}
    return obj


def _desired_view(obj):
    """The object as the API server stores it, for the comparison: a Secret's write-only
    stringData becomes base64 data; status is left out (not written by an apply), and so
    are apiVersion and kind (the identity; the items of a LIST do not carry them)."""
    view = {key: value for key, value in obj.items() if key not in _NOT_APPLIED and key not in ("apiVersion", "kind")}
    if obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1" and isinstance(obj.get("stringData"), dict):
        data = dict(view.get("data") or {})
        for key, value in obj["stringData"].items():
            data[key] = base64.b64encode(str(value).encode("utf-8")).decode("ascii")
        view["data"] = data
        del view["stringData"]
    return view


def _empty(value):
    return value is None or value == {} or value == []


def differences(desired, live, path=""):
    """Paths (a.b[0].c) where the live object does not hold a value the sink sends.
    Fields only the live object has (defaults, other managers' fields) do not count;
    lists must have the same length. A string the server stores for a number (a quantity
    like cpu: 1) matches. Keys of Secret data are named, never their values."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return [path or "."] if not (_empty(desired) and live is None) else []
        found = []
        for key, value in desired.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in live:
                if not _empty(value):
                    found.append(where)
                continue
            found.extend(differences(value, live[key], where))
        return found
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return [] if _empty(desired) and _empty(live) else [path]
        found = []
        for index, (want, have) in enumerate(zip(desired, live)):
            found.extend(differences(want, have, f"{path}[{index}]"))
        return found
    if desired == live and type(desired) is type(live):
        return []
    if isinstance(desired, (int, float)) and not isinstance(desired, bool) and isinstance(live, str) and str(desired) == live:
        return []
    return [path]


def comparable(obj):
    """An object without the bookkeeping the API server changes on every write."""
    data = {key: value for key, value in (obj or {}).items() if key not in _NOT_APPLIED}
    data["metadata"] = {key: value for key, value in (data.get("metadata") or {}).items() if key not in ("managedFields", "resourceVersion", "generation")}
    return data


def read_manifests(paths):
    """The objects of manifest files, in order: JSON (a document or a list of them, e.g.
    a `kind: List`) read with the json module, anything else as multi-document YAML.
    The objects are read where the sink runs, so a large file (CRD schemas) never travels
    through task arguments; JSON parses about 20x faster than YAML."""
    objects = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as e:
            raise ApplyError(f"src {path}: cannot read it: {e.strerror or e}") from e
        try:
            if text.lstrip()[:1] in ("{", "["):
                try:
                    data = json.loads(text)
                except ValueError:
                    objects.extend(load_documents(text, path))  # YAML flow style, not JSON
                    continue
                objects.extend(flatten(data if isinstance(data, list) else [data], path))
            else:
                objects.extend(load_documents(text, path))
        except ObjectError as e:
            raise ApplyError(f"src {e}") from e
    return objects


def applier_for(adapter, params, check_mode, diff):
    """An Applier configured from the validated options (module and action plugin)."""
    return Applier(
        adapter,
        field_manager=params["field_manager"],
        force_conflicts=params["force_conflicts"],
        workers=params["workers"],
        check_mode=check_mode,
        diff=diff,
        skip_unchanged=params["skip_unchanged"],
        wait=params["wait"],
        wait_for=params["wait_for"],
        wait_timeout=params["wait_timeout"],
    )


def run_apply(applier, objects, diff, src=()):
    """Result dict of a run: failed with the message and everything done so far when an
    object failed; the diff only in diff mode. The objects of the src files follow
    objects."""
    try:
        result = applier.run(list(objects or []) + read_manifests(src))
    except ApplyError as e:
        return dict(applier.summary(), failed=True, msg=str(e), waited=applier.waited)
    entries = result.pop("diff")
    if diff:
        result["diff"] = entries
    return result


class Applier:
    """Plan and run the apply of a list of objects through an adapter."""

    def __init__(
        self,
        adapter,
        field_manager="researchops",
        force_conflicts=True,
        workers=8,
        check_mode=False,
        diff=False,
        skip_unchanged=True,
        wait=False,
        wait_for=(),
        wait_timeout=600,
    ):
        self.adapter = adapter
        self.field_manager = field_manager
        self.force_conflicts = force_conflicts
        self.workers = max(1, int(workers))
        self.check_mode = check_mode
        self.diff = diff
        self.skip_unchanged = skip_unchanged
        self.wait = wait
        self.wait_for = list(wait_for or [])
        self.wait_timeout = wait_timeout
        self.results = []
        self.diffs = []
        self.waited = []
        self._new_crd_kinds = set()

    # ------------------------------------------------------------------ planning
    def prepare(self, objects):
        """Check the list, attach hashes, refuse duplicates; return wave lists."""
        seen = {}
        waves = {}
        for index, obj in enumerate(objects):
            try:
                check_object(obj, f"object {index}")
            except ObjectError as e:
                raise ApplyError(str(e)) from e
            key = object_key(obj)
            if key in seen:
                raise ApplyError(f"{object_id(obj)} is given twice (items {seen[key]} and {index})")
            seen[key] = index
            waves.setdefault(apply_wave(obj), []).append(with_hash(obj))
        for wave in waves.values():
            for obj in wave:
                if is_crd(obj):
                    spec = obj.get("spec") or {}
                    self._new_crd_kinds.add((spec.get("group", ""), (spec.get("names") or {}).get("kind", "")))
        return [waves[number] for number in sorted(waves)]

    def _resource(self, obj):
        return self.adapter.resource(obj["apiVersion"], obj["kind"])

    def _resolve(self, wave):
        """(object, resource or None) pairs; None when the type is not served yet but its CRD
        is in the list (check mode before the CRD exists). Unknown types fail."""
        pairs, errors = [], []
        for obj in wave:
            try:
                resource = self._resource(obj)
            except UnknownResource as e:
                if (api_group(obj["apiVersion"]), obj["kind"]) in self._new_crd_kinds and self.check_mode:
                    pairs.append((obj, None))
                    continue
                errors.append(f"{object_id(obj)}: {e}")
                continue
            namespace = (obj.get("metadata") or {}).get("namespace")
            if resource.namespaced and not namespace:
                errors.append(f"{object_id(obj)}: {obj['kind']} is namespaced but metadata.namespace is not set")
                continue
            if not resource.namespaced and namespace:
                obj = dict(obj, metadata={k: v for k, v in obj["metadata"].items() if k != "namespace"})
            pairs.append((obj, resource))
        if errors:
            raise ApplyError("; ".join(errors))
        return pairs

    def _current(self, pairs):
        """The live objects: one LIST per resource type and namespace."""
        groups = {}
        for obj, resource in pairs:
            if resource is None:
                continue
            namespace = obj["metadata"].get("namespace") if resource.namespaced else None
            groups.setdefault((id(resource), namespace), (resource, namespace))
        current = {}

        def fetch(item):
            resource, namespace = item
            return item, self.adapter.list_objects(resource, namespace)

        for (resource, namespace), listed in self._map(fetch, list(groups.values())):
            for name, live in listed.items():
                current[(id(resource), namespace, name)] = live
        return current

    def _map(self, func, items):
        if len(items) <= 1 or self.workers == 1:
            return [func(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(items))) as pool:
            return list(pool.map(func, items))

    # ------------------------------------------------------------------ applying
    def _apply_one(self, item):
        """(result, error, diff entry) of one object."""
        obj, resource, live = item
        identity = {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "namespace": obj["metadata"].get("namespace"),
            "name": obj["metadata"]["name"],
        }
        if resource is None:  # check mode, CRD not there yet
            return dict(identity, action="created"), None, self._diff_entry(obj, None, obj)
        if live is not None and (live.get("metadata") or {}).get("deletionTimestamp"):
            # neither equal nor fixable by an apply: it disappears once its finalizers ran
            return identity, f"{object_id(obj)}: is being deleted (deletionTimestamp set); run again once it is gone", None
        wanted = obj["metadata"]["annotations"][HASH_ANNOTATION]
        fields = [field for field in differences(_desired_view(obj), live) if field != _HASH_PATH] if live is not None else []
        same_hash = live is not None and ((live.get("metadata") or {}).get("annotations") or {}).get(HASH_ANNOTATION) == wanted
        if self.skip_unchanged and same_hash and not fields:
            return dict(identity, action="unchanged"), None, None
        namespace = identity["namespace"] if resource.namespaced else None
        try:
            after = self.adapter.apply(
                resource, obj, namespace, field_manager=self.field_manager, force_conflicts=self.force_conflicts, dry_run=self.check_mode
            )
        except Exception as e:  # the API client raises ApiException, urllib3 errors, ValueError...
            return identity, f"{object_id(obj)}: {api_message(e)}", None
        if live is None:
            action = "created"
        elif self.check_mode:
            action = "updated" if comparable(after) != comparable(live) else "unchanged"
        else:
            after_version = ((after or {}).get("metadata") or {}).get("resourceVersion")
            action = "unchanged" if after_version == (live.get("metadata") or {}).get("resourceVersion") else "updated"
        result = dict(identity, action=action)
        if action == "updated":
            # same hash: the sink's content did not change, the live object drifted from it
            result["drifted"] = bool(same_hash)
            result["fields"] = fields or [field for field in ("metadata", "spec", "data") if (live or {}).get(field) != (after or {}).get(field)]
        entry = self._diff_entry(obj, live, after) if action != "unchanged" else None
        return result, None, entry

    def _diff_entry(self, obj, before, after):
        if not self.diff:
            return None
        label = object_id(obj)
        return {
            "before_header": label,
            "after_header": label,
            "before": json.dumps(clean(before), indent=2, sort_keys=True) + "\n" if before else "",
            "after": json.dumps(clean(after), indent=2, sort_keys=True) + "\n",
        }

    def _apply_wave(self, wave):
        pairs = self._resolve(wave)
        current = self._current(pairs)
        items = []
        for obj, resource in pairs:
            live = None
            if resource is not None:
                namespace = obj["metadata"].get("namespace") if resource.namespaced else None
                live = current.get((id(resource), namespace, obj["metadata"]["name"]))
            items.append((obj, resource, live))
        errors = []
        for result, error, diff_entry in self._map(self._apply_one, items):
            if error:
                errors.append(error)
                continue
            self.results.append(result)
            if diff_entry:
                self.diffs.append(diff_entry)
        if errors:
            raise ApplyError(f"{len(errors)} object(s) failed to apply: " + "; ".join(sorted(errors)))

    # ------------------------------------------------------------------ waiting
    def _wait_all(self, targets):
        """targets: (label, apiVersion, kind, name, namespace, condition)."""
        if self.check_mode or not targets:
            return

        def wait_one(target):
            label, api_version, kind, name, namespace, condition = target
            started = time.monotonic()
            ok, detail = self.adapter.wait(api_version, kind, name, namespace, condition, self.wait_timeout)
            return label, ok, detail, round(time.monotonic() - started, 1)

        failures = []
        for label, ok, detail, seconds in self._map(wait_one, targets):
            self.waited.append({"object": label, "ready": ok, "seconds": seconds})
            if not ok:
                failures.append(f"{label}: {detail}")
        if failures:
            raise ApplyError(f"timed out after {self.wait_timeout}s waiting for: " + "; ".join(sorted(failures)))

    def run(self, objects):
        waves = self.prepare(objects)
        for wave in waves:
            self._apply_wave(wave)
            # CRDs created or changed in this wave (an unchanged one was Established on an earlier run).
            sent = {(r["kind"], r["name"]) for r in self.results if r["action"] != "unchanged"}
            crds = [obj for obj in wave if is_crd(obj) and (obj["kind"], obj["metadata"]["name"]) in sent]
            self._wait_all(
                [(f"{object_id(crd)} Established", crd["apiVersion"], crd["kind"], crd["metadata"]["name"], None, ESTABLISHED) for crd in crds]
            )
            if crds:
                self.adapter.invalidate()
        if self.wait:
            targets = []
            for wave in waves:
                for obj in wave:
                    if obj["kind"] in ROLLOUT_KINDS:
                        meta = obj["metadata"]
                        targets.append((f"{object_id(obj)} rolled out", obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"), None))
            for item in self.wait_for:
                api_version = item.get("apiVersion") or item.get("api_version")
                if not api_version or not item.get("kind") or not item.get("name"):
                    raise ApplyError(f"wait_for item {item!r} needs apiVersion, kind and name")
                label = f"{item['kind']} {item.get('namespace') + '/' if item.get('namespace') else ''}{item['name']} ({api_version})"
                targets.append((label, api_version, item["kind"], item["name"], item.get("namespace"), item.get("condition")))
            self._wait_all(targets)
        return dict(self.summary(), waited=self.waited, diff=self.diffs)

    def summary(self):
        """changed, objects and the labels of the changed / drifted / unchanged objects so far."""
        changed = [self._label(r) for r in self.results if r["action"] in ("created", "updated")]
        return {
            "changed": bool(changed),
            "objects": self.results,
            "applied": changed,
            "drifted": [self._label(r) for r in self.results if r.get("drifted")],
            "unchanged": [self._label(r) for r in self.results if r["action"] == "unchanged"],
        }

    @staticmethod
    def _label(result):
        where = f"{result['namespace']}/{result['name']}" if result.get("namespace") else result["name"]
        return f"{result['kind']} {where}"


class ApiAdapter:
    """Adapter over kubernetes.core's K8SClient (get_api_client)."""

    def __init__(self, client, poll_interval=2):
        self.client = client
        self.poll_interval = poll_interval
        self._cache = {}

    def resource(self, api_version, kind):
        key = (api_version, kind)
        if key not in self._cache:
            try:
                self._cache[key] = self.client.resource(kind, api_version)
            except Exception as first:  # ResourceNotFoundError; retry once on fresh discovery
                self.invalidate()
                try:
                    self._cache[key] = self.client.resource(kind, api_version)
                except Exception as e:
                    raise UnknownResource(f"the API server does not serve {kind} in {api_version} ({e or first})") from e
        return self._cache[key]

    def invalidate(self):
        self._cache.clear()
        resources = self.client.client.resources
        if hasattr(resources, "invalidate_cache"):
            resources.invalidate_cache()

    def list_objects(self, resource, namespace):
        """name -> live object, one paged LIST (raw JSON: no ResourceInstance wrapping)."""
        listed = {}
        token = None
        while True:
            response = self.client.client.request("get", resource.path(namespace=namespace), limit=500, _continue=token, serialize=False)
            data = json.loads(response.data)
            for item in data.get("items") or []:
                listed[(item.get("metadata") or {}).get("name")] = item
            token = (data.get("metadata") or {}).get("continue")
            if not token:
                return listed

    def apply(self, resource, body, namespace, field_manager, force_conflicts, dry_run):
        params = {"field_manager": field_manager, "force_conflicts": force_conflicts}
        if dry_run:
            params["dry_run"] = "All"
        response = self.client.client.server_side_apply(resource, body=body, namespace=namespace, serialize=False, **params)
        return json.loads(response.data)

    def wait(self, api_version, kind, name, namespace, condition, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                resource = self.resource(api_version, kind)
                break
            except UnknownResource as e:
                if time.monotonic() >= deadline:
                    return False, str(e)
                time.sleep(self.poll_interval)
                self.invalidate()
        if condition:

            def predicate(instance):
                return instance is not None and custom_condition(condition, instance)

        else:
            base = RESOURCE_PREDICATES.get(kind, exists)

            def predicate(instance):
                return instance is not None and base(instance)

        remaining = max(1, int(deadline - time.monotonic()))
        try:
            ok, instance, _elapsed = Waiter(self.client, resource, predicate).wait(
                timeout=remaining, sleep=self.poll_interval, name=name, namespace=namespace
            )
        except CoreException as e:
            return False, str(e)
        if ok:
            return True, "ready"
        status = (instance or {}).get("status") or {}
        return False, f"not ready, status {json.dumps(status, sort_keys=True)[:300]}" if instance else "does not exist"
