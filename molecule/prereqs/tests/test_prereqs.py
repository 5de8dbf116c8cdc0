"""Verify researchops.mlops.prereqs on the molecule container."""
import re

FLAGS = ["cgroup_enable=cpuset", "cgroup_memory=1", "cgroup_enable=memory"]
CHRONY = "prereqs-chrony-debian12"


def _chrony(host):
    return host.backend.get_hostname() == CHRONY


def test_base_packages(host):
    time_sync = "chrony" if _chrony(host) else "systemd-timesyncd"
    for name in ["ca-certificates", "curl", "gnupg", "iptables", "conntrack", "socat", time_sync]:
        assert host.package(name).is_installed, name


def test_modules_load_file(host):
    f = host.file("/etc/modules-load.d/researchops-k3s.conf")
    assert f.is_file and f.mode == 0o644
    lines = [ln for ln in f.content_string.splitlines() if ln and not ln.startswith("#")]
    assert lines == ["overlay", "br_netfilter"]


def test_sysctl_file(host):
    f = host.file("/etc/sysctl.d/90-researchops-k3s.conf")
    assert f.is_file
    values = dict(
        (k.strip(), v.strip())
        for k, v in (ln.split("=", 1) for ln in f.content_string.splitlines() if "=" in ln and not ln.startswith("#"))
    )
    assert values == {
        "net.ipv4.ip_forward": "1",
        "net.bridge.bridge-nf-call-iptables": "1",
        "net.bridge.bridge-nf-call-ip6tables": "1",
        "fs.inotify.max_user_watches": "524288",
        "fs.inotify.max_user_instances": "8192",
        "net.ipv6.conf.all.forwarding": "1",
        # What the kubelet demands with protect-kernel-defaults (kubernetes
        # pkg/kubelet/cm/container_manager_linux.go, setupKernelTunables).
        "vm.overcommit_memory": "1",
        "vm.panic_on_oom": "0",
        "kernel.panic": "10",
        "kernel.panic_on_oops": "1",
        "kernel.keys.root_maxkeys": "1000000",
        "kernel.keys.root_maxbytes": "25000000",
    }


def test_swap_commented_out_of_fstab(host):
    content = host.file("/etc/fstab").content_string
    assert "# /var/swapfile none swap sw 0 0" in content
    assert not re.search(r"^[^#\s]\S*\s+\S+\s+swap\s", content, re.M)


def test_time_sync_enabled(host):
    if _chrony(host):
        # chrony was there first: kept and enabled; timesyncd (which conflicts) not installed.
        assert host.package("chrony").is_installed and host.service("chrony").is_enabled
        assert not host.package("systemd-timesyncd").is_installed
    else:
        assert host.service("systemd-timesyncd").is_enabled


def test_cmdline_flags_appended_once(host):
    if _chrony(host):
        return
    content = host.file("/boot/firmware/cmdline.txt").content_string
    assert content.count("\n") == 1 and content.endswith("\n"), "cmdline.txt must stay one line"
    tokens = content.split()
    assert tokens[0] == "console=serial0,115200"
    assert "rootwait" in tokens and "quiet" in tokens
    for flag in FLAGS:
        assert tokens.count(flag) == 1, flag


def test_iptables_legacy_alternative(host):
    if _chrony(host):
        return
    out = host.check_output("update-alternatives --query iptables")
    assert "Value: /usr/sbin/iptables-legacy" in out


def test_zram_swap_masked(host):
    """zram swap (zram-tools' zramswap.service here) would bring swap back at boot."""
    assert host.run("systemctl is-enabled zramswap.service").stdout.strip() == "masked"
    assert not host.service("zramswap.service").is_running
