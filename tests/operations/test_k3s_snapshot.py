"""playbooks/backup.yml and playbooks/restore.yml drive k3s the way k3s documents
("Backup and restore": ``k3s etcd-snapshot save``; restore with ``k3s server
--cluster-reset --cluster-reset-restore-path=<snapshot> --token=<token>`` on the first
server, the others deleting server/db). The k3s binary is a stand-in that checks its
arguments against the upstream CLI and refuses anything else (k3s_standin.py); the
servers are this machine under two inventory names, their data dirs in tmp.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ops_helpers import run_playbook

HERE = Path(__file__).resolve().parent
TOKEN = "K10-stand-in-cluster-token::server:0123456789abcdef"
pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path):
    hosts = {}
    for name in ("srv1", "srv2"):
        data = tmp_path / name / "k3s"
        (data / "server" / "db" / "etcd").mkdir(parents=True)
        (data / "server" / "db" / "snapshots").mkdir()
        (data / "server" / "token").write_text(TOKEN + "\n")
        hosts[name] = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                       "ansible_become": False, "backup_k3s_data_dir": str(data)}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {
        "hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
        "children": {"k3s_cluster": {"children": {"k3s_servers": {"hosts": hosts}, "k3s_agents": {"hosts": {}}}}},
        "vars": {"mlops_k8s_sink": "render", "backup_k3s_bin": str(HERE / "k3s_standin.py"),
                 "backup_k3s_service_manage": False, "backup_dest": str(tmp_path / "backups")}}}))
    log = tmp_path / "k3s-calls.jsonl"
    return {"inventory": str(inventory), "env": {"STANDIN_LOG": str(log), "STANDIN_TOKEN": TOKEN},
            "log": log, "tmp": tmp_path}


def calls(cluster):
    return [json.loads(line) for line in cluster["log"].read_text().splitlines()]


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
