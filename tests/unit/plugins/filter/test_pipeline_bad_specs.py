"""Every bad spec of fixtures/bad_specs.yml raises AnsibleFilterError naming the filter,
the field path and what is allowed - never another exception."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from pipeline_fixtures import delete_path, example_spec, images, platform, set_path

from ansible_collections.researchops.mlops.plugins.filter.pipeline import pipeline_objects, pipeline_spec

CASES = yaml.safe_load((Path(__file__).parent / "fixtures" / "bad_specs.yml").read_text(encoding="utf-8"))


def _set(spec, path, value):
    if isinstance(path, str):
        set_path(spec, path, value)
    else:  # a key YAML read as another type (integer, boolean)
        spec[path] = value


def _item(kind, index, value="x"):
    return {"build_arg": {"name": f"A{index}", "value": value}, "env": {"name": f"E{index}", "value": value},
            "branch": f"b{index}"}[kind]


def _generated(case):
    """Values too big or too deep to write in YAML: `deep`, `repeat`, `many`."""
    if "deep" in case:
        value = "x"
        mapping = case["deep"]["path"].endswith("body")
        for _level in range(case["deep"]["depth"]):
            value = {"k": value} if mapping else [value]
        yield case["deep"]["path"], value
    if "repeat" in case:
        rep = case["repeat"]
        text = rep.get("prefix", "") + rep["char"] * rep["count"]
        if "item" in rep:
            yield rep["path"], [_item(rep["item"], 0, text)]
        elif "times" in rep:
            *parent, _leaf = rep["path"].split(".")
            yield ".".join(parent), {f"blob{i}": text for i in range(rep["times"])}
        else:
            yield rep["path"], text
    if "many" in case:
        yield case["many"]["path"], [_item(case["many"]["item"], i) for i in range(case["many"]["count"])]


def _arguments(case):
    if "input" in case:
        specs = case["input"]
    else:
        spec = example_spec()
        for path in case.get("delete", []):
            delete_path(spec, path)
        for path, value in case.get("set", {}).items():
            _set(spec, path, value)
        for path, value in _generated(case):
            _set(spec, path, value)
        specs = [spec, example_spec()] if case.get("duplicate") else [spec]
        if "also" in case:
            other = example_spec()
            other["name"] = "mnist2"
            for path, value in case["also"].items():
                _set(other, path, value)
            specs.append(other)
    plat = platform()
    for key in case.get("platform_delete", []):
        del plat[key]
    plat.update(case.get("platform_set", {}))
    imgs = images()
    for key in case.get("images_delete", []):
        del imgs[key]
    imgs.update(case.get("images_set", {}))
    return specs, plat, imgs


def test_enough_cases():
    assert len(CASES) >= 150
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_bad_spec_raises_filter_error(case):
    specs, plat, imgs = _arguments(case)
    with pytest.raises(AnsibleFilterError) as caught:
        pipeline_objects(specs, platform=plat, images=imgs)
    message = str(caught.value)
    assert message.startswith("pipeline_objects: "), message
    assert case["error"] in message, f"expected {case['error']!r} in {message!r}"
    assert "Traceback" not in message


@pytest.mark.parametrize(
    "case", [c for c in CASES if not any(k.startswith(("platform", "images", "objects_only")) for k in c)],
    ids=[c["id"] for c in CASES if not any(k.startswith(("platform", "images", "objects_only")) for k in c)])
def test_bad_spec_rejected_by_pipeline_spec_too(case):
    specs, _second, _third = _arguments(case)
    with pytest.raises(AnsibleFilterError) as caught:
        pipeline_spec(specs)
    assert str(caught.value).startswith("pipeline_spec: ")
    assert case["error"] in str(caught.value)


def test_platform_and_images_are_required():
    with pytest.raises(AnsibleFilterError, match="platform= and images= arguments are required"):
        pipeline_objects([example_spec()])
