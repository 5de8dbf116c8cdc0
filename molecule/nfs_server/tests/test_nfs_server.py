"""Verify researchops.mlops.nfs_server on the molecule container."""


def test_package_installed(host):
    assert host.package("nfs-kernel-server").is_installed


def test_exports_file(host):
    f = host.file("/etc/exports")
    assert f.is_file and f.mode == 0o644 and f.user == "root"
    lines = [ln for ln in f.content_string.splitlines() if ln and not ln.startswith("#")]
    assert lines == [
        "/srv/nfs/k3s 10.0.0.0/24(rw,sync,no_subtree_check,no_root_squash) 192.0.2.41(rw,sync,no_subtree_check,no_root_squash)",
        "/srv/nfs/datasets *(ro,sync,no_subtree_check)",
    ]


def test_export_dirs(host):
    k3s = host.file("/srv/nfs/k3s")
    assert k3s.is_directory and k3s.mode == 0o755
    datasets = host.file("/srv/nfs/datasets")
    assert datasets.is_directory and datasets.mode == 0o750


def test_service_enabled(host):
    assert host.service("nfs-server").is_enabled
