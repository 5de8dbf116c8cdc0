"""researchops.mlops.node_probe: the read-only node probe of preflight.

Expectations from the kernel's own files: cgroup v2 lists enabled controllers in
/sys/fs/cgroup/cgroup.controllers (Documentation/admin-guide/cgroup-v2.rst, "Core
Interface Files"); cgroup v1 lists them in /proc/cgroups with an `enabled` column
(man 7 cgroups); loaded modules are in /proc/modules, built-in ones in
/lib/modules/<release>/modules.builtin and installable ones in modules.dep (kmod's
depmod(8)); module names treat '-' and '_' alike (kmod)."""
from __future__ import annotations

import socket

import pytest

from ansible_collections.researchops.mlops.plugins.modules import node_probe


def files(mapping):
    return lambda path: mapping.get(path, "")


def test_cgroup_v2_with_memory(monkeypatch):
    monkeypatch.setattr(node_probe, "_read", files({"/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory pids\n"}))
    assert node_probe.cgroups() == (2, True)


def test_cgroup_v2_without_memory(monkeypatch):
    monkeypatch.setattr(node_probe, "_read", files({"/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io pids\n"}))
    assert node_probe.cgroups() == (2, False)


def test_cgroup_v1_memory_disabled(monkeypatch):
    """Raspberry Pi OS without cgroup_enable=memory: the memory row says enabled 0."""
    proc = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t2\t1\t1\nmemory\t0\t1\t0\n"
    monkeypatch.setattr(node_probe, "_read", files({"/proc/cgroups": proc}))
    assert node_probe.cgroups() == (1, False)


def test_cgroup_v1_memory_enabled(monkeypatch):
    proc = "#subsys_name\thierarchy\tnum_cgroups\tenabled\nmemory\t4\t90\t1\n"
    monkeypatch.setattr(node_probe, "_read", files({"/proc/cgroups": proc}))
    assert node_probe.cgroups() == (1, True)


def test_modules_loaded_builtin_installable_or_missing(monkeypatch):
    release = "6.1.0-test"
    uname = type("U", (), {"release": release})()
    monkeypatch.setattr(node_probe.os, "uname", lambda: uname)
    monkeypatch.setattr(node_probe, "_read", files({
        "/proc/modules": "overlay 151552 0 - Live 0x0\n",
        f"/lib/modules/{release}/modules.builtin": "kernel/net/bridge/br_netfilter.ko\n",
        f"/lib/modules/{release}/modules.dep": "kernel/net/netfilter/xt_conntrack.ko.xz: kernel/net/netfilter/nf_conntrack.ko.xz\n",
    }))
    assert node_probe.missing_modules(["overlay", "br_netfilter", "xt-conntrack", "wireguard"]) == ["wireguard"]


def test_reach_says_no_and_yes():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert node_probe.reach(f"http://127.0.0.1:{port}", 1) is not None
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        assert node_probe.reach(f"http://127.0.0.1:{server.getsockname()[1]}", 1) is None


def test_free_space_of_a_missing_path_uses_its_parent(tmp_path):
    assert node_probe.free_gib(str(tmp_path / "not" / "there")) == pytest.approx(node_probe.free_gib(str(tmp_path)), rel=0.01)
