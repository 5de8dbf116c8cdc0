# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Read a pinned upstream manifest (local copy or verified download) as Kubernetes objects."""

from __future__ import annotations

DOCUMENTATION = r"""
name: upstream_manifest
short_description: Kubernetes objects of a pinned upstream manifest, checksum-verified
version_added: 0.1.0
author: ResearchOps developers (@researchops)
description:
  - Takes one or more C({path, url, sha256}) entries of C(versions.yml) and returns the
    Kubernetes objects of those files, in file order; multi-document YAML is split, empty
    documents are dropped and C(List) documents are flattened into their items.
  - With O(upstream_dir) set, the file is read from O(upstream_dir)/C(path) (an offline
    copy laid out C(<project>/<tag>/<file>)); otherwise it is downloaded from C(url) into
    O(download_cache) once and read from there afterwards.
  - The sha256 of the bytes read is always compared with the entry's C(sha256), for the
    local copy, for a fresh download and for a cached file; a mismatch fails naming the
    file, the expected and the actual sum. A cached file with a wrong sum is downloaded
    again (unless O(offline)).
  - With O(offline) and no O(upstream_dir), only an already cached and verified file is
    used; anything else fails saying which file is missing.
  - Use C(query) (or C(wantlist=true)); C(lookup) would return a lone object as a mapping.
  - Parsing YAML is slow for the large manifests (seconds for Argo Workflows' 12 MB), and
    a role may read one several times; the parsed objects are therefore kept as JSON in
    O(download_cache)C(/parsed/<sha256>.json), keyed by the verified sha256 of the source
    file, and read from there while the source's sum is unchanged (O(parse_cache)).
options:
  _terms:
    description: Entries C({path, url, sha256}) (mappings), or lists of them.
    required: true
    type: list
    elements: raw
  upstream_dir:
    description: Local folder with the upstream files. Empty to download. Defaults to the variable C(mlops_upstream_dir).
    type: str
    default: ""
  download_cache:
    description: Folder where downloads are kept (as C(<download_cache>/<path>)). Defaults to the variable C(mlops_download_cache).
    type: str
    default: ~/.cache/researchops
  offline:
    description: Never download. Defaults to the variable C(mlops_offline).
    type: bool
    default: false
  parse_cache:
    description: Keep parsed objects as JSON in O(download_cache) (see above).
    type: bool
    default: true
  validate_certs:
    description: Verify the TLS certificate of the download server.
    type: bool
    default: true
  timeout:
    description: Download timeout in seconds.
    type: int
    default: 60
"""

EXAMPLES = r"""
- name: Argo CD objects from the pinned install.yaml
  ansible.builtin.set_fact:
    __argocd_objects: "{{ query('researchops.mlops.upstream_manifest', mlops_argocd_manifest) }}"

- name: All cert-manager CRDs (a list of entries)
  ansible.builtin.set_fact:
    __crds: "{{ query('researchops.mlops.upstream_manifest', mlops_cert_manager_crds) }}"

- name: Read from a given offline copy, whatever the inventory says
  ansible.builtin.set_fact:
    __objects: "{{ query('researchops.mlops.upstream_manifest', mlops_argocd_manifest, upstream_dir='/srv/upstream') }}"
"""

RETURN = r"""
_raw:
  description: The Kubernetes objects of every entry, in order.
  type: list
  elements: dict
"""

import hashlib
import os

from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.text.converters import to_native, to_text
from ansible.module_utils.urls import open_url
from ansible.plugins.lookup import LookupBase

from ansible_collections.researchops.mlops.plugins.module_utils.k8s_objects import ObjectError, load_documents_cached, write_atomic


def sha256_of(data):
    return hashlib.sha256(data).hexdigest()


def check_entry(entry):
    """Validate one versions.yml entry; return (path, url, sha256)."""
    if not isinstance(entry, dict):
        raise AnsibleLookupError(f"upstream_manifest: expected a {{path, url, sha256}} mapping, got {entry!r}")
    unknown = sorted(set(entry) - {"path", "url", "sha256"})
    if unknown:
        raise AnsibleLookupError(f"upstream_manifest: unknown keys {unknown} in entry {entry!r}")
    path, url, digest = (entry.get(key) or "" for key in ("path", "url", "sha256"))
    if not path:
        raise AnsibleLookupError(f"upstream_manifest: entry {entry!r} has no path")
    if os.path.isabs(path) or ".." in path.split("/"):
        raise AnsibleLookupError(f"upstream_manifest: path {path!r} must be relative, inside the upstream folder")
    digest = str(digest).lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise AnsibleLookupError(f"upstream_manifest: entry {path} has no valid sha256 (got {entry.get('sha256')!r}): pin one in versions.yml")
    return str(path), str(url), digest


def verify(data, digest, where):
    actual = sha256_of(data)
    if actual != digest:
        raise AnsibleLookupError(f"upstream_manifest: sha256 mismatch for {where}: expected {digest}, got {actual}")


def read_local(upstream_dir, path, digest):
    where = os.path.join(upstream_dir, path)
    try:
        with open(where, "rb") as handle:
            data = handle.read()
    except OSError as e:
        raise AnsibleLookupError(f"upstream_manifest: cannot read {where} (mlops_upstream_dir={upstream_dir}): {to_native(e)}") from e
    verify(data, digest, where)
    return data, where


def read_cached(cache_dir, path, url, digest, offline, validate_certs, timeout):
    where = os.path.join(cache_dir, path)
    if os.path.isfile(where):
        with open(where, "rb") as handle:
            data = handle.read()
        if sha256_of(data) == digest:
            return data, where
        if offline:
            verify(data, digest, f"{where} (cached)")
    elif offline:
        raise AnsibleLookupError(
            f"upstream_manifest: offline mode and {path} is neither in mlops_upstream_dir (unset) nor cached at {where}: "
            "set mlops_upstream_dir to a folder holding it"
        )
    if not url:
        raise AnsibleLookupError(f"upstream_manifest: {path} is not cached and its entry has no url")
    try:
        response = open_url(url, validate_certs=validate_certs, timeout=timeout, follow_redirects="all")
        data = response.read()
    except Exception as e:  # open_url raises URLError, HTTPError, SSLValidationError, socket errors...
        raise AnsibleLookupError(f"upstream_manifest: download of {url} failed: {to_native(e)}") from e
    verify(data, digest, f"{url} (downloaded)")
    write_atomic(where, data)
    return data, where


def parse(data, where, digest, cache_dir):
    """Objects of a verified file; the JSON copy in cache_dir/parsed/ is used when present
    (k8s_objects.load_documents_cached, shared with k8s_validate)."""
    try:
        return load_documents_cached(data, where, cache_dir, digest)
    except (ObjectError, UnicodeDecodeError) as e:
        raise AnsibleLookupError(f"upstream_manifest: {to_native(e)}") from e


class LookupModule(LookupBase):
    def _setting(self, name, variables, kwargs):
        if name in kwargs:
            return kwargs[name]
        value = (variables or {}).get(f"mlops_{name}")
        if value is None:
            return self.get_option(name)
        if self._templar is not None:
            value = self._templar.template(value)
        return value

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        upstream_dir = to_text(self._setting("upstream_dir", variables, kwargs) or "").strip()
        cache_dir = os.path.expanduser(to_text(self._setting("download_cache", variables, kwargs) or "~/.cache/researchops"))
        offline = self._bool(self._setting("offline", variables, kwargs))
        validate_certs = self.get_option("validate_certs")
        parse_cache = self.get_option("parse_cache")
        timeout = self.get_option("timeout")

        entries = []
        for term in terms:
            entries.extend(term if isinstance(term, list) else [term])
        if not entries:
            raise AnsibleLookupError("upstream_manifest: no entry given")

        objects = []
        for entry in entries:
            path, url, digest = check_entry(entry)
            if upstream_dir:
                data, where = read_local(os.path.expanduser(upstream_dir), path, digest)
            else:
                data, where = read_cached(cache_dir, path, url, digest, offline, validate_certs, timeout)
            objects.extend(parse(data, where, digest, cache_dir if parse_cache else None))
        return objects

    @staticmethod
    def _bool(value):
        if isinstance(value, bool):
            return value
        return str(value).strip().lower() in ("1", "true", "yes", "on", "y")
