"""Secrets leave the cluster only encrypted, and come back.

The backup role writes the platform Secrets with ansible-core's ``vault`` filter
(``lib/ansible/plugins/filter/encryption.py``: ``do_vault`` -> ``VaultLib.encrypt``,
AES256 with a PBKDF2-derived key) and the restore reads them back with ``unvault``. This
checks the file on disk holds none of the values in any encoding, decrypts with the
passphrase through the ``ansible-vault`` CLI (what an operator would use), and refuses a
wrong one.
"""
import base64

import yaml
from ops_helpers import PASSPHRASE, role_tasks, run_playbook

SECRETS = [
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "harbor-database", "namespace": "postgresql"},
     "type": "Opaque", "data": {"password": base64.b64encode(b"db-pass-7f3a91").decode()}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "argocd-secret", "namespace": "argocd"},
     "type": "Opaque", "stringData": {"admin.password": "argo-pass-c0ffee"}},
]


def test_secrets_round_trip(tmp_path, vault_view):
    plain = yaml.safe_dump(SECRETS)
    run_playbook(role_tasks("encrypt.yml", {"__backup_dir": str(tmp_path), "__backup_plain": plain}), tmp_path)
    stored = (tmp_path / "secrets.yaml.vault").read_text()
    assert stored.startswith("$ANSIBLE_VAULT;1.2;AES256;researchops-backup")
    for needle in ("db-pass-7f3a91", "argo-pass-c0ffee", SECRETS[0]["data"]["password"], "harbor-database"):
        assert needle not in stored
    assert oct((tmp_path / "secrets.yaml.vault").stat().st_mode & 0o777) == "0o600"
    shown = vault_view(tmp_path / "secrets.yaml.vault")
    assert shown.returncode == 0, shown.stderr
    assert yaml.safe_load(shown.stdout) == SECRETS
    assert vault_view(tmp_path / "secrets.yaml.vault", passphrase="not-the-passphrase").returncode != 0


def test_backup_refuses_without_a_passphrase(tmp_path):
    proc = run_playbook("playbooks/backup.yml", tmp_path, check=False,
                        extra={"backup_dest": str(tmp_path), "backup_passphrase": "short"})
    assert proc.returncode != 0
    assert "backup_passphrase is unset or shorter than 12 characters" in proc.stdout
    assert not list(tmp_path.glob("researchops-*"))
    assert PASSPHRASE not in proc.stdout
