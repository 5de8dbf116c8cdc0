"""Unit tests of the upstream_manifest lookup: local copy, download cache, offline mode,
checksum errors, multi-document parsing."""
from __future__ import annotations

import hashlib
import json
from unittest import mock

import pytest
from ansible.errors import AnsibleLookupError

from ansible_collections.researchops.mlops.plugins.lookup import upstream_manifest
from ansible_collections.researchops.mlops.plugins.lookup.upstream_manifest import LookupModule
from ansible_collections.researchops.mlops.plugins.module_utils import k8s_objects


@pytest.fixture(autouse=True, scope="module")
def plugin_config():
    """Register the plugin's documented options, as the plugin loader does."""
    import yaml
    from ansible.constants import config

    docs = yaml.safe_load(upstream_manifest.DOCUMENTATION)
    config.initialize_plugin_configuration_definitions("lookup", "upstream_manifest", docs["options"])
    LookupModule._load_name = "upstream_manifest"


MANIFEST = b"""---
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
# only a comment, an empty document
---
apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: a, namespace: demo}}
  - {apiVersion: v1, kind: ConfigMap, metadata: {name: b, namespace: demo}}
"""
SUM = hashlib.sha256(MANIFEST).hexdigest()


def entry(path="demo/v1/install.yaml", sha256=SUM, url="https://example.org/install.yaml"):
    return {"path": path, "url": url, "sha256": sha256}


def lookup(terms, **kwargs):
    kwargs.setdefault("parse_cache", "download_cache" in kwargs)  # never the real ~/.cache
    return LookupModule().run(terms, variables={}, **kwargs)


@pytest.fixture
def local_copy(tmp_path):
    (tmp_path / "demo/v1").mkdir(parents=True)
    (tmp_path / "demo/v1/install.yaml").write_bytes(MANIFEST)
    return tmp_path


def test_local_copy_is_parsed_empty_docs_dropped_lists_flattened(local_copy):
    objects = lookup([entry()], upstream_dir=str(local_copy))
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [("Namespace", "demo"), ("ConfigMap", "a"), ("ConfigMap", "b")]


def test_a_list_of_entries_and_several_terms_concatenate(local_copy):
    assert len(lookup([[entry(), entry()], entry()], upstream_dir=str(local_copy))) == 9


def test_local_checksum_mismatch_names_file_and_sums(local_copy):
    bad = "0" * 64
    with pytest.raises(AnsibleLookupError, match=rf"sha256 mismatch for {local_copy}/demo/v1/install.yaml: expected {bad}, got {SUM}"):
        lookup([entry(sha256=bad)], upstream_dir=str(local_copy))


def test_missing_local_file_says_where(tmp_path):
    with pytest.raises(AnsibleLookupError, match="cannot read .*demo/v1/install.yaml"):
        lookup([entry()], upstream_dir=str(tmp_path))


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"path": "x.yaml", "url": "u"}, "has no valid sha256"),
        ({"path": "x.yaml", "url": "u", "sha256": "abc"}, "has no valid sha256"),
        ({"url": "u", "sha256": SUM}, "has no path"),
        ({"path": "../x.yaml", "url": "u", "sha256": SUM}, "must be relative"),
        ({"path": "x.yaml", "sha256": SUM, "version": 1}, "unknown keys"),
        ("argo-cd/install.yaml", "expected a {path, url, sha256} mapping"),
    ],
)
def test_bad_entries(bad, message, tmp_path):
    with pytest.raises(AnsibleLookupError, match=message.replace("{", r"\{").replace("}", r"\}")):
        lookup([bad], upstream_dir=str(tmp_path))


class Response:
    def __init__(self, data):
        self.data = data

    def read(self):
        return self.data


def test_download_is_verified_cached_and_reused(tmp_path):
    cache = tmp_path / "cache"
    with mock.patch.object(upstream_manifest, "open_url", return_value=Response(MANIFEST)) as fetch:
        first = lookup([entry()], download_cache=str(cache))
        second = lookup([entry()], download_cache=str(cache))
    assert fetch.call_count == 1
    assert first == second and len(first) == 3
    assert (cache / "demo/v1/install.yaml").read_bytes() == MANIFEST


def test_download_with_wrong_sum_fails_and_caches_nothing(tmp_path):
    cache = tmp_path / "cache"
    with mock.patch.object(upstream_manifest, "open_url", return_value=Response(b"tampered")):
        with pytest.raises(AnsibleLookupError, match=r"sha256 mismatch for https://example.org/install.yaml \(downloaded\)"):
            lookup([entry()], download_cache=str(cache))
    assert not (cache / "demo/v1/install.yaml").exists()


def test_corrupt_cache_is_downloaded_again(tmp_path):
    cache = tmp_path / "cache"
    (cache / "demo/v1").mkdir(parents=True)
    (cache / "demo/v1/install.yaml").write_bytes(b"corrupt")
    with mock.patch.object(upstream_manifest, "open_url", return_value=Response(MANIFEST)) as fetch:
        assert len(lookup([entry()], download_cache=str(cache))) == 3
    assert fetch.call_count == 1


def test_offline_without_copy_fails_clearly(tmp_path):
    with mock.patch.object(upstream_manifest, "open_url") as fetch:
        with pytest.raises(AnsibleLookupError, match="offline mode and demo/v1/install.yaml is neither in mlops_upstream_dir"):
            lookup([entry()], download_cache=str(tmp_path), offline=True)
    fetch.assert_not_called()


def test_offline_uses_a_verified_cache(tmp_path):
    (tmp_path / "demo/v1").mkdir(parents=True)
    (tmp_path / "demo/v1/install.yaml").write_bytes(MANIFEST)
    assert len(lookup([entry()], download_cache=str(tmp_path), offline=True)) == 3


def test_download_error_names_the_url(tmp_path):
    with mock.patch.object(upstream_manifest, "open_url", side_effect=OSError("connection refused")):
        with pytest.raises(AnsibleLookupError, match="download of https://example.org/install.yaml failed: connection refused"):
            lookup([entry()], download_cache=str(tmp_path))


def test_settings_come_from_mlops_variables(local_copy):
    module = LookupModule()
    objects = module.run([entry()], variables={"mlops_upstream_dir": str(local_copy), "mlops_offline": True}, parse_cache=False)
    assert len(objects) == 3


def test_invalid_yaml_names_the_file(tmp_path):
    data = b"kind: [unclosed\n"
    (tmp_path / "bad.yaml").write_bytes(data)
    with pytest.raises(AnsibleLookupError, match="bad.yaml: not valid YAML"):
        lookup([entry(path="bad.yaml", sha256=hashlib.sha256(data).hexdigest())], upstream_dir=str(tmp_path))


def test_real_upstream_copy_parses(repo_root):
    """The pinned cert-manager CRDs parse into CRD objects (offline copy, sums verified)."""
    import os

    import yaml

    from ansible_collections.researchops.mlops.plugins.module_utils.k8s_objects import is_crd

    upstream_dir = os.environ.get("MLOPS_UPSTREAM_DIR", str(repo_root.parent / "shared" / "upstream"))
    versions = yaml.safe_load((repo_root / "roles/mlops/defaults/main/versions.yml").read_text())
    objects = lookup([versions["mlops_cert_manager_crds"]], upstream_dir=upstream_dir)
    assert all(is_crd(o) for o in objects)
    assert len(objects) == len(versions["mlops_cert_manager_crds"])


def test_parsed_objects_are_cached_by_source_sum(local_copy, tmp_path):
    cache = tmp_path / "cache"
    first = lookup([entry()], upstream_dir=str(local_copy), download_cache=str(cache))
    cached = cache / "parsed" / f"{SUM}.json"
    assert cached.is_file()
    with mock.patch.object(k8s_objects, "load_documents") as parse:
        assert lookup([entry()], upstream_dir=str(local_copy), download_cache=str(cache)) == first
    parse.assert_not_called()


def test_a_changed_source_is_never_served_from_the_parse_cache(local_copy, tmp_path):
    cache = tmp_path / "cache"
    lookup([entry()], upstream_dir=str(local_copy), download_cache=str(cache))
    (local_copy / "demo/v1/install.yaml").write_bytes(MANIFEST + b"# changed\n")
    with pytest.raises(AnsibleLookupError, match="sha256 mismatch"):
        lookup([entry()], upstream_dir=str(local_copy), download_cache=str(cache))


def test_corrupt_parse_cache_is_rewritten(local_copy, tmp_path):
    cache = tmp_path / "cache"
    (cache / "parsed").mkdir(parents=True)
    (cache / "parsed" / f"{SUM}.json").write_text("{not json")
    assert len(lookup([entry()], upstream_dir=str(local_copy), download_cache=str(cache))) == 3
    assert json.loads((cache / "parsed" / f"{SUM}.json").read_text())["source_sha256"] == SUM


def test_data_json_cannot_hold_is_not_cached(tmp_path):
    data = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, creationTimestamp: 2024-01-01T00:00:00Z}\ndata: {1: x}\n"
    (tmp_path / "up").mkdir()
    (tmp_path / "up/cm.yaml").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    objects = lookup([entry(path="cm.yaml", sha256=digest)], upstream_dir=str(tmp_path / "up"), download_cache=str(tmp_path / "cache"))
    assert objects[0]["data"] == {1: "x"}
    assert not (tmp_path / "cache" / "parsed" / f"{digest}.json").exists()
