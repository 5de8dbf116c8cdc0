"""Run playbooks/awx.yml with recording stand-ins for the awx.awx modules."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from awx_helpers import AWX_MODULES, CREDENTIALS, HERE, REPO


@pytest.fixture(scope="session")
def awx_calls(tmp_path_factory):
    """[{module, params}] of every awx.awx call playbooks/awx.yml makes, in order."""
    tmp = tmp_path_factory.mktemp("awx")
    modules = tmp / "collections" / "ansible_collections" / "awx" / "awx" / "plugins" / "modules"
    modules.mkdir(parents=True)
    for name in AWX_MODULES:
        shutil.copy(HERE / "awx_recorder.py", modules / f"{name}.py")
    record = tmp / "calls.jsonl"
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), AWX_RECORDER_FILE=str(record),
               ANSIBLE_COLLECTIONS_PATH=f"{tmp / 'collections'}:{REPO / 'collections'}", ANSIBLE_NOCOLOR="1")
    extra = json.dumps({"awx_config_credentials": CREDENTIALS, "awx_config_sync_inventory": True,
                        "awx_config_cloudflare_credential": "ResearchOps Cloudflare",
                        "awx_config_aws_credential": "ResearchOps S3"})
    proc = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "playbooks/awx.yml",
                           "-i", "inventories/local", "-e", extra],
                          cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    return {"calls": calls, "stdout": proc.stdout}


@pytest.fixture(scope="session")
def job_templates(awx_calls):
    return {c["params"]["name"].split(" | ", 1)[1]: c["params"]
            for c in awx_calls["calls"] if c["module"] == "job_template"}
