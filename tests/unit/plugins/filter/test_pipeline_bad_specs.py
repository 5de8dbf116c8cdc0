"""Every bad spec of fixtures/bad_specs.yml raises AnsibleFilterError naming the filter,
the field path and what is allowed - never another exception."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.researchops.mlops.plugins.filter.pipeline import pipeline_objects, pipeline_spec

from pipeline_fixtures import delete_path, example_spec, images, platform, set_path

CASES = yaml.safe_load((Path(__file__).parent / "fixtures" / "bad_specs.yml").read_text(encoding="utf-8"))


def _arguments(case):
    if "input" in case:
        specs = case["input"]
    else:
        spec = example_spec()
        for path in case.get("delete", []):
            delete_path(spec, path)
        for path, value in case.get("set", {}).items():
            set_path(spec, path, value)
        specs = [spec, example_spec()] if case.get("duplicate") else [spec]
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
    assert len(CASES) >= 50
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
    "case", [c for c in CASES if not any(k.startswith(("platform", "images")) for k in c)],
    ids=[c["id"] for c in CASES if not any(k.startswith(("platform", "images")) for k in c)])
def test_bad_spec_rejected_by_pipeline_spec_too(case):
    specs, _, _ = _arguments(case)
    with pytest.raises(AnsibleFilterError) as caught:
        pipeline_spec(specs)
    assert str(caught.value).startswith("pipeline_spec: ")
    assert case["error"] in str(caught.value)


def test_platform_and_images_are_required():
    with pytest.raises(AnsibleFilterError, match="platform= and images= arguments are required"):
        pipeline_objects([example_spec()])
