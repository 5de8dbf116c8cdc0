"""Fixtures of the operations tests."""
import subprocess
import sys
from pathlib import Path

import pytest
from ops_helpers import PASSPHRASE


@pytest.fixture
def vault_view(tmp_path):
    def view(path, passphrase=PASSPHRASE):
        secret = tmp_path / "vault-pass"
        secret.write_text(passphrase)
        return subprocess.run([str(Path(sys.executable).with_name("ansible-vault")), "view",
                               "--vault-password-file", str(secret), str(path)],
                              capture_output=True, text=True, check=False)
    return view
