# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Name patterns, one definition for the pipeline spec (module_utils/pipeline/spec.py),
the platform filters (filter/platform_objects.py) and preflight (plugin_utils/preflight.py).

Every pattern is anchored with `\\Z`: `$` would let a trailing newline through (a domain
"lab.example.org\\n"). Lengths other than a DNS label's are checked by the caller.

Upstream rules:
- DNS-1123 label and subdomain: kubernetes apimachinery pkg/util/validation/validation.go
  (dns1123LabelFmt, IsDNS1123Label: at most 63 characters; dns1123SubdomainFmt,
  IsDNS1123Subdomain: at most 253).
- Ingress rule host: kubernetes pkg/apis/networking/validation/validation.go
  (validateIngressRules: IsWildcardDNS1123Subdomain when it starts with "*", else
  IsDNS1123Subdomain; never a port or an IP).
- S3 bucket names: AWS "Bucket naming rules"; Garage src/api/common/helpers.rs
  (is_valid_bucket_name).
- Harbor project names: goharbor/harbor src/server/v2.0/handler/project.go
  (validateProjectName).
"""

from __future__ import annotations

import re

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = _LABEL + r"(\." + _LABEL + r")*"

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
DNS1123_SUBDOMAIN = re.compile(r"^" + _SUBDOMAIN + r"\Z")

# Two host patterns, on purpose:
# - an Ingress rule's host: a leading "*." wildcard allowed, no port (the API server
#   refuses a port there);
INGRESS_HOST = re.compile(r"^(\*\.)?" + _SUBDOMAIN + r"\Z")
# - a host the pipelines reach (the registry in image references, the webhook): no
#   wildcard (it names one server), an optional :port (a registry on a non-default port).
SERVER_HOST = re.compile(r"^" + _SUBDOMAIN + r"(:[0-9]{1,5})?\Z")

S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
HARBOR_PROJECT = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*\Z")
