# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Small filters over lists of Kubernetes objects: set the namespace, select or drop by
kind/name, merge a patch into some of them, split out CRDs. Documentation: k8s_namespace.yml,
k8s_select.yml, k8s_drop.yml, k8s_patch.yml, k8s_crds.yml beside this file."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.researchops.mlops.plugins.module_utils.k8s_objects import ObjectScopes, is_crd, plain


def _check_objects(name, objects):
    if not isinstance(objects, list):
        raise AnsibleFilterError(f"{name}: expected a list of Kubernetes objects, got {type(objects).__name__}")
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict) or not isinstance(obj.get("kind"), str):
            raise AnsibleFilterError(f"{name}: item {index} is not a Kubernetes object (no kind): {obj!r:.200}")


def k8s_namespace(objects, namespace, force=False, rewrite_subjects=True):
    _check_objects("k8s_namespace", objects)
    if not isinstance(namespace, str) or not namespace:
        raise AnsibleFilterError(f"k8s_namespace: namespace must be a non-empty string, got {namespace!r}")
    scopes = ObjectScopes(objects)
    result = []
    for obj in objects:
        # copy only what changes (upstream manifests are large; the input stays untouched)
        obj = dict(obj)
        metadata = obj["metadata"] = dict(obj.get("metadata") or {})
        if scopes.is_namespaced(obj["kind"]) and (force or not metadata.get("namespace")):
            metadata["namespace"] = namespace
        if rewrite_subjects and obj["kind"] in ("RoleBinding", "ClusterRoleBinding") and isinstance(obj.get("subjects"), list):
            obj["subjects"] = [
                dict(subject, namespace=namespace)
                if isinstance(subject, dict) and subject.get("kind") == "ServiceAccount" and not subject.get("namespace")
                else subject
                for subject in obj["subjects"]
            ]
        result.append(obj)
    return result


def _as_set(name, field, value):
    if value is None:
        return None
    if isinstance(value, str):
        return {value}
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return set(value)
    raise AnsibleFilterError(f"{name}: {field} must be a string or a list of strings, got {value!r}")


def _matches(obj, kinds, names):
    if kinds is not None and obj.get("kind") not in kinds:
        return False
    if names is not None and (obj.get("metadata") or {}).get("name") not in names:
        return False
    return True


def _filter(name, objects, kind, obj_name, keep):
    _check_objects(name, objects)
    kinds, names = _as_set(name, "kind", kind), _as_set(name, "name", obj_name)
    if kinds is None and names is None:
        raise AnsibleFilterError(f"{name}: give kind and/or name")
    return [obj for obj in objects if _matches(obj, kinds, names) == keep]


def k8s_select(objects, kind=None, name=None):
    return _filter("k8s_select", objects, kind, name, True)


def k8s_drop(objects, kind=None, name=None):
    return _filter("k8s_drop", objects, kind, name, False)


def _named(items):
    return isinstance(items, list) and all(isinstance(item, dict) and isinstance(item.get("name"), str) for item in items)


def _merge(base, patch):
    """base with patch merged in: mappings merged key by key, lists of named items
    (containers, env, volumes) merged by name, anything else replaced."""
    if _named(base) and _named(patch) and patch:
        by_name = {item["name"]: item for item in patch}
        merged = [_merge(item, by_name.pop(item["name"])) if item["name"] in by_name else item for item in base]
        return merged + [plain(item) for item in patch if item["name"] in by_name]
    if not isinstance(base, dict) or not isinstance(patch, dict):
        # a plain copy: deepcopy of Ansible's lazy template containers copies their
        # templating context (all variables), seconds per call
        return plain(patch)
    merged = dict(base)
    for key, value in patch.items():
        merged[key] = _merge(base.get(key), value)
    return merged


def k8s_patch(objects, patch, kind=None, name=None):
    _check_objects("k8s_patch", objects)
    if not isinstance(patch, dict) or not patch:
        raise AnsibleFilterError(f"k8s_patch: patch must be a non-empty mapping, got {patch!r:.200}")
    kinds, names = _as_set("k8s_patch", "kind", kind), _as_set("k8s_patch", "name", name)
    if kinds is None and names is None:
        raise AnsibleFilterError("k8s_patch: give kind and/or name")
    matched = [obj for obj in objects if _matches(obj, kinds, names)]
    if not matched:
        raise AnsibleFilterError(f"k8s_patch: no object matches kind={kind!r} name={name!r}")
    return [_merge(obj, patch) if _matches(obj, kinds, names) else obj for obj in objects]


def k8s_crds(objects):
    _check_objects("k8s_crds", objects)
    return [obj for obj in objects if is_crd(obj)]


class FilterModule:
    def filters(self):
        return {
            "k8s_namespace": k8s_namespace,
            "k8s_select": k8s_select,
            "k8s_drop": k8s_drop,
            "k8s_patch": k8s_patch,
            "k8s_crds": k8s_crds,
        }
