import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.researchops.mlops.plugins.filter.argument_spec import argument_spec_optional


def test_top_level_required_and_default_removed_nested_kept():
    spec = {
        "a": {"type": "str", "required": True},
        "b": {"type": "int", "default": 3, "choices": [1, 3]},
        "c": {"type": "dict", "options": {"x": {"type": "str", "required": True}}},
    }
    out = argument_spec_optional(spec)
    assert out == {
        "a": {"type": "str"},
        "b": {"type": "int", "choices": [1, 3]},
        "c": {"type": "dict", "options": {"x": {"type": "str", "required": True}}},
    }
    assert spec["a"]["required"] is True  # input untouched


def test_not_a_mapping():
    with pytest.raises(AnsibleFilterError, match="expected the options mapping"):
        argument_spec_optional(["a"])


def test_option_not_a_mapping():
    with pytest.raises(AnsibleFilterError, match="option 'a' is not a mapping"):
        argument_spec_optional({"a": "str"})
