"""playbooks/backup.yml and playbooks/restore.yml drive k3s the way k3s documents
("Backup and restore": ``k3s etcd-snapshot save``; restore with ``k3s server
--cluster-reset --cluster-reset-restore-path=<snapshot> --token=<token>`` on the first
server, the others deleting server/db). The k3s binary is a stand-in that checks its
arguments against the upstream CLI and refuses anything else (k3s_standin.py); the
servers are this machine under two inventory names, their data dirs in tmp.
"""
import json
import subprocess
from pathlib import Path

import pytest
from ops_helpers import TOKEN, calls, run_playbook

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.slow


def test_standin_refuses_what_k3s_would_not_run(tmp_path):
    env = {"STANDIN_LOG": str(tmp_path / "log"), "STANDIN_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}
    for bad in (["etcd-snapshot", "save", "--name=x"], ["etcd-snapshot", "save", "--name=x", f"--dir={tmp_path}", "--bogus"],
                ["server", "--cluster-reset", f"--cluster-reset-restore-path={tmp_path}/none", f"--token={TOKEN}"],
                ["etcd-snapshot", "restore"]):
        assert subprocess.run([str(HERE / "k3s_standin.py"), *bad], env=env, capture_output=True, check=False).returncode == 1


def test_backup_then_restore(cluster, vault_view):
    run_playbook("playbooks/backup.yml", cluster["tmp"], inventory=cluster["inventory"], env=cluster["env"])
    (backup,) = (cluster["tmp"] / "backups").glob("researchops-*")
    (save,) = calls(cluster)
    assert save == ["etcd-snapshot", "save", f"--name={backup.name}",
                    f"--dir={cluster['tmp']}/srv1/k3s/server/db/snapshots"]
    assert (backup / "etcd-snapshot").read_text() == "etcd snapshot of a stand-in cluster\n"
    assert TOKEN not in (backup / "k3s-token.vault").read_text()
    assert vault_view(backup / "k3s-token.vault").stdout.strip() == TOKEN
    assert json.loads((backup / "backup.json").read_text())["created"] == backup.name

    proc = run_playbook("playbooks/restore.yml", cluster["tmp"], inventory=cluster["inventory"], env=cluster["env"],
                        extra={"backup_restore_from": str(backup), "backup_restore_confirm": "restore-cluster"})
    assert TOKEN not in proc.stdout
    reset = calls(cluster)[1:]
    restored = f"{cluster['tmp']}/srv1/k3s/server/db/snapshots/{backup.name}"
    assert reset == [["server", "--cluster-reset", f"--cluster-reset-restore-path={restored}", f"--token={TOKEN}"]]
    assert not (cluster["tmp"] / "srv2" / "k3s" / "server" / "db").exists(), "the second server keeps old etcd data"
    assert (cluster["tmp"] / "srv1" / "k3s" / "server" / "db").exists()


def test_restore_needs_the_confirmation(cluster):
    backup = cluster["tmp"] / "backups" / "researchops-x"
    backup.mkdir(parents=True)
    proc = run_playbook("playbooks/restore.yml", cluster["tmp"], inventory=cluster["inventory"], env=cluster["env"],
                        extra={"backup_restore_from": str(backup)}, check=False)
    assert proc.returncode != 0 and "backup_restore_confirm=restore-cluster" in proc.stdout
    assert not cluster["log"].exists()


def test_restore_with_the_wrong_passphrase_fails_before_any_node(cluster):
    run_playbook("playbooks/backup.yml", cluster["tmp"], inventory=cluster["inventory"], env=cluster["env"])
    (backup,) = (cluster["tmp"] / "backups").glob("researchops-*")
    proc = run_playbook("playbooks/restore.yml", cluster["tmp"], inventory=cluster["inventory"], check=False,
                        env=dict(cluster["env"], RESEARCHOPS_BACKUP_PASSPHRASE="another-long-passphrase"),
                        extra={"backup_restore_from": str(backup), "backup_restore_confirm": "restore-cluster"})
    assert proc.returncode != 0
    assert len(calls(cluster)) == 1  # only the snapshot save: no cluster-reset was attempted
