"""Every valid spec of fixtures/valid_specs.yml generates objects that validate strictly
against the pinned upstream schemas (plugins/module_utils/manifest_validation.py), and the
cases together set every option of the schema."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.researchops.mlops.plugins.filter.pipeline import pipeline_objects, pipeline_spec
from ansible_collections.researchops.mlops.plugins.module_utils.pipeline.spec import load_schema

from pipeline_fixtures import delete_path, example_spec, images, platform, set_path
from pipeline_validation import validate_objects

CASES = yaml.safe_load((Path(__file__).parent / "fixtures" / "valid_specs.yml").read_text(encoding="utf-8"))


def spec_of(case):
    if "spec" in case:
        return copy.deepcopy(case["spec"])
    spec = example_spec()
    for path in case.get("delete", []):
        delete_path(spec, path)
    for path, value in case.get("set", {}).items():
        set_path(spec, path, value)
    return spec


def test_enough_cases():
    assert len(CASES) >= 25
    assert len({c["id"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_valid_spec_generates_valid_objects(case, upstream):
    spec = spec_of(case)
    before = json.dumps(spec, sort_keys=True)
    objects = pipeline_objects([spec], platform=platform(), images=images())[spec["name"]]
    assert json.dumps(spec, sort_keys=True) == before, "the filter must not change its input"
    assert validate_objects(objects, upstream) == []
    assert all(len(json.dumps(o)) < 512 * 1024 for o in objects)


def test_all_valid_specs_together():
    """All cases at once, renamed apart, are one valid set of pipelines (no collisions)."""
    specs = []
    for index, case in enumerate(CASES):
        spec = pipeline_spec([spec_of(case)])[0]
        spec["name"] = f"p{index}"
        spec["ci"]["image"] = spec["cd"]["deployment"] = spec["cd"]["service"] = ""
        spec["webhook"]["secret"]["name"] = ""
        specs.append(spec)
    assert len(pipeline_objects(specs, platform=platform(), images=images())) == len(CASES)


def _leaves(schema, prefix=""):
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}.{key}" if prefix else key
        if sub.get("type") == "object" and "properties" in sub:
            yield from _leaves(sub, path)
        elif sub.get("type") == "array" and sub.get("items", {}).get("type") == "object":
            yield from _leaves(sub["items"], path + "[]")
        else:
            yield path, sub.get("default", "<required>")


def _values(spec, path):
    node = [spec]
    for part in path.split("."):
        many = part.endswith("[]")
        key = part[:-2] if many else part
        nxt = []
        for item in node:
            if isinstance(item, dict) and key in item:
                nxt.extend(item[key] if many else [item[key]])
        node = nxt
    return node


def test_cases_set_every_option_to_a_non_default_value():
    raw = [spec_of(case) for case in CASES]
    missing = []
    for path, default in _leaves(load_schema()):
        if not any(value != default for spec in raw for value in _values(spec, path)):
            missing.append(path)
    assert not missing, f"no valid spec sets {missing} to a non-default value"
