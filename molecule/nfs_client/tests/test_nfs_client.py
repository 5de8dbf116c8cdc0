"""Verify researchops.mlops.nfs_client on the molecule container."""


def test_nfs_common_installed(host):
    assert host.package("nfs-common").is_installed


def test_mount_helper_present(host):
    # What the kubelet actually needs to mount an NFS volume.
    helper = host.file("/sbin/mount.nfs")
    assert helper.exists
    assert host.run("/sbin/mount.nfs -V").rc == 0
