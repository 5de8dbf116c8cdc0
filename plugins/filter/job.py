# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Shared parts of the platform's in-cluster Jobs (module_utils/jobs.py), for templates.
Documentation: job_defaults.yml, creates_secrets.yml and job_scripts.yml beside this file."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError

from ansible_collections.researchops.mlops.plugins.module_utils import jobs

_REF = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_FILE = re.compile(r"^[A-Za-z0-9][-_.A-Za-z0-9]*$")


def job_defaults(part):
    if part not in jobs.JOB_DEFAULTS:
        raise AnsibleFilterError(f"job_defaults: unknown part {part!r}, expected one of {sorted(jobs.JOB_DEFAULTS)}")
    return jobs.job_default(part)


def creates_secrets(refs):
    if isinstance(refs, (str, bytes)) or not isinstance(refs, Sequence) or not refs:
        raise AnsibleFilterError(f"creates_secrets: expected a non-empty list of '<namespace>/<name>', got {refs!r}")
    for index, ref in enumerate(refs):
        if not isinstance(ref, str) or not _REF.match(ref):
            raise AnsibleFilterError(f"creates_secrets: item {index} {ref!r} is not '<namespace>/<name>'")
    return jobs.creates_secrets(refs)


def job_scripts(scripts):
    if not isinstance(scripts, Mapping) or not scripts:
        raise AnsibleFilterError(f"job_scripts: expected a non-empty mapping of file name to source, got {scripts!r:.200}")
    for name, source in scripts.items():
        if not isinstance(name, str) or not _FILE.match(name) or name == jobs.CLIENT_FILE:
            raise AnsibleFilterError(f"job_scripts: {name!r} is not a plain file name (or is the client's own, {jobs.CLIENT_FILE})")
        if not isinstance(source, str):
            raise AnsibleFilterError(f"job_scripts: the source of {name} must be a string, got {type(source).__name__}")
    return jobs.script_files(scripts)


class FilterModule:
    def filters(self):
        return {"job_defaults": job_defaults, "creates_secrets": creates_secrets, "job_scripts": job_scripts}
