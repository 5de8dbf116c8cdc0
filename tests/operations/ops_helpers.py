"""Run the backup role's task files and playbooks against local stand-ins."""
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PASSPHRASE = "operations-test-passphrase"
TOKEN = "K10-stand-in-cluster-token::server:0123456789abcdef"


def run_playbook(playbook, tmp, inventory=None, extra=None, env=None, check=True):
    """ansible-playbook from the checkout; returns the CompletedProcess."""
    if isinstance(playbook, list):
        path = tmp / f"play-{len(list(tmp.glob('play-*.yml')))}.yml"
        path.write_text(yaml.safe_dump(playbook, sort_keys=False))
        playbook = str(path)
    inv = inventory or str(REPO / "inventories" / "local")
    args = [str(Path(sys.executable).with_name("ansible-playbook")), playbook, "-i", inv]
    for key, value in (extra or {}).items():
        args += ["-e", yaml.safe_dump({key: value}, default_flow_style=True).strip()]
    full_env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                    ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"), RESEARCHOPS_BACKUP_PASSPHRASE=PASSPHRASE)
    full_env.update(env or {})
    proc = subprocess.run(args, cwd=REPO, env=full_env, capture_output=True, text=True, check=False)
    if check:
        assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    return proc


def role_tasks(tasks_from, vars_=None):
    """A play on localhost that runs one task file of the backup role."""
    return [{"name": f"backup role {tasks_from}", "hosts": "localhost", "connection": "local",
             "gather_facts": False, "vars": vars_ or {},
             "tasks": [{"name": "Run it", "ansible.builtin.include_role": {
                 "name": "researchops.mlops.backup", "tasks_from": tasks_from}}]}]


def calls(cluster):
    """The k3s stand-in's calls, in order."""
    return [json.loads(line) for line in cluster["log"].read_text().splitlines()]
