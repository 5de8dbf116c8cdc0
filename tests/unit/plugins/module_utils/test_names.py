"""The shared name patterns (module_utils/names.py) against the upstream rules they follow:
kubernetes apimachinery pkg/util/validation/validation.go (IsDNS1123Label, at most 63
characters; IsDNS1123Subdomain) and pkg/apis/networking/validation/validation.go
(validateIngressRules: an Ingress host may start with the "*." wildcard and has no port)."""
from __future__ import annotations

import pytest

from ansible_collections.researchops.mlops.plugins.module_utils import names


@pytest.mark.parametrize("value, ok", [
    ("a", True), ("mlops-pipelines", True), ("a" * 63, True), ("a" * 64, False), ("-a", False), ("a-", False),
    ("A", False), ("a.b", False), ("a\n", False), ("", False),
])
def test_dns1123_label(value, ok):
    assert bool(names.DNS1123_LABEL.match(value)) is ok


@pytest.mark.parametrize("value, ok", [
    ("harbor-core", True), ("lab.example.org", True), ("a..b", False), (".a", False), ("a.", False),
    ("lab.example.org\n", False), ("Lab.example.org", False),
])
def test_dns1123_subdomain(value, ok):
    assert bool(names.DNS1123_SUBDOMAIN.match(value)) is ok


@pytest.mark.parametrize("value, ingress, server", [
    ("argocd.lab.example.org", True, True),
    ("*.lab.example.org", True, False),          # a wildcard names no one server
    ("harbor.lab.example.org:8443", False, True),  # an Ingress host never has a port
    ("a.*.example.org", False, False),
    ("harbor.lab.example.org\n", False, False),
    ("https://harbor.lab.example.org", False, False),
])
def test_the_two_host_patterns_differ_only_by_wildcard_and_port(value, ingress, server):
    assert bool(names.INGRESS_HOST.match(value)) is ingress
    assert bool(names.SERVER_HOST.match(value)) is server
