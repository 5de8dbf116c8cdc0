"""Fixtures of the operations tests."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ops_helpers import PASSPHRASE, TOKEN

HERE = Path(__file__).resolve().parent


@pytest.fixture
def vault_view(tmp_path):
    def view(path, passphrase=PASSPHRASE):
        secret = tmp_path / "vault-pass"
        secret.write_text(passphrase)
        return subprocess.run([str(Path(sys.executable).with_name("ansible-vault")), "view",
                               "--vault-password-file", str(secret), str(path)],
                              capture_output=True, text=True, check=False)
    return view


@pytest.fixture
def cluster(tmp_path):
    """Two k3s servers (this machine under two names) whose k3s binary is k3s_standin.py."""
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
