#!/usr/bin/python
# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Read-only node probe of the preflight role: cgroups, kernel modules, NVIDIA driver,
free disk, clock and registry mirror reachability, in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
module: node_probe
short_description: Read what k3s needs from a node, changing nothing
version_added: 0.1.0
author: ResearchOps developers (@researchops)
description:
  - Used by the C(researchops.mlops.preflight) role before any change, as the only task
    on each node (no separate fact gathering). Returns the distribution facts (the same
    collector as C(ansible.builtin.setup)'s C(distribution) subset) and the
    architecture. Reads
    C(/sys/fs/cgroup) and C(/proc/cgroups) (memory controller), C(/proc/modules) and
    C(/lib/modules/<release>/modules.builtin)/C(modules.dep) (kernel modules), runs
    C(nvidia-smi) when asked, measures free space and the clock, and opens a TCP
    connection to each registry mirror endpoint.
  - Never changes the node; C(changed) is always false.
options:
  modules:
    description: Kernel modules k3s needs (loaded, built in or installable).
    type: list
    elements: str
    default: []
  paths:
    description: Paths whose file system's free space is reported (the nearest existing parent is used).
    type: list
    elements: str
    default: [/, /var/lib]
  nvidia:
    description: Ask C(nvidia-smi) for the driver version.
    type: bool
    default: false
  endpoints:
    description: Registry mirror URLs to open a TCP connection to.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds to wait for each endpoint.
    type: float
    default: 3
  controller_time:
    description: The controller's clock when the task was sent; the result holds the difference.
    type: float
"""

EXAMPLES = r"""
- name: Probe the node
  researchops.mlops.node_probe:
    modules: [overlay, br_netfilter]
    nvidia: true
    endpoints: [https://mirror.example.org]
  register: probe
"""

RETURN = r"""
facts:
  description: C(distribution), C(distribution_version), C(distribution_major_version), C(os_family), C(architecture), C(kernel).
  returned: always
  type: dict
time_skew:
  description: Node clock minus O(controller_time), seconds (null without O(controller_time)).
  returned: always
  type: float
cgroup_version:
  description: 2 for the unified hierarchy, 1 otherwise.
  returned: always
  type: int
cgroup_memory:
  description: Whether the memory controller is available.
  returned: always
  type: bool
modules_missing:
  description: Modules neither loaded, built in nor installed for the running kernel.
  returned: always
  type: list
  elements: str
nvidia_driver:
  description: Driver version reported by nvidia-smi, empty when none answers.
  returned: always
  type: str
free_gib:
  description: Free GiB per requested path.
  returned: always
  type: dict
time:
  description: The node's clock (seconds since the epoch).
  returned: always
  type: float
unreachable_endpoints:
  description: Endpoint -> error, for the endpoints that could not be reached.
  returned: always
  type: dict
"""

import os
import platform
import socket
import time
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.facts.system.distribution import DistributionFactCollector


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def cgroups():
    controllers = _read("/sys/fs/cgroup/cgroup.controllers")
    if controllers:
        return 2, "memory" in controllers.split()
    for line in _read("/proc/cgroups").splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] == "memory":
            return 1, fields[3] == "1"
    return 1, False


def missing_modules(names):
    release = os.uname().release
    loaded = {line.split()[0] for line in _read("/proc/modules").splitlines() if line.strip()}
    known = set()
    for index in ("modules.builtin", "modules.dep"):
        for line in _read(f"/lib/modules/{release}/{index}").splitlines():
            path = line.split(":", 1)[0]
            base = os.path.basename(path).split(".ko", 1)[0]
            known.add(base.replace("-", "_"))
    return [n for n in names if n.replace("-", "_") not in loaded | known]


def free_gib(path):
    while path and not os.path.exists(path):
        path = os.path.dirname(path.rstrip("/")) or "/"
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize / 2**30


def reach(url, timeout):
    parts = urlsplit(url if "://" in url else f"https://{url}")
    port = parts.port or (80 if parts.scheme == "http" else 443)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return None
    except (OSError, ValueError) as e:
        return str(e)


def main():
    module = AnsibleModule(
        argument_spec={
            "modules": {"type": "list", "elements": "str", "default": []},
            "paths": {"type": "list", "elements": "str", "default": ["/", "/var/lib"]},
            "nvidia": {"type": "bool", "default": False},
            "endpoints": {"type": "list", "elements": "str", "default": []},
            "timeout": {"type": "float", "default": 3},
            "controller_time": {"type": "float"},
        },
        supports_check_mode=True,
    )
    now = time.time()
    facts = {k: v for k, v in DistributionFactCollector().collect(module=module).items() if k.startswith(("distribution", "os_family"))}
    facts.update(architecture=platform.machine(), kernel=platform.release())
    version, memory = cgroups()
    driver = ""
    if module.params["nvidia"]:
        smi = module.get_bin_path("nvidia-smi")
        if smi:
            rc, out, _err = module.run_command([smi, "--query-gpu=driver_version", "--format=csv,noheader"])
            driver = out.strip().splitlines()[0] if rc == 0 and out.strip() else ""
    unreachable_endpoints = {}
    for endpoint in module.params["endpoints"]:
        error = reach(endpoint, module.params["timeout"])
        if error:
            unreachable_endpoints[endpoint] = error
    module.exit_json(
        changed=False,
        cgroup_version=version,
        cgroup_memory=memory,
        modules_missing=missing_modules(module.params["modules"]),
        nvidia_driver=driver,
        free_gib={p: round(free_gib(p), 2) for p in module.params["paths"]},
        time=now,
        time_skew=None if module.params["controller_time"] is None else round(now - module.params["controller_time"], 1),
        facts=facts,
        unreachable_endpoints=unreachable_endpoints,
    )


if __name__ == "__main__":
    main()
