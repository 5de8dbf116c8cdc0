"""k3s's data directory is one variable (k3s_data_dir) used by every path under it.

k3s's `--data-dir` (pkg/cli/cmds/server.go `DataDirFlag`, default /var/lib/rancher/k3s)
holds the server token (pkg/server/server.go `printTokens`: <data-dir>/server/token), the
airgap images (<data-dir>/agent/images), the containerd shims
(<data-dir>/data/<hash>/bin/containerd-shim*, what k3s-killall.sh matches) and the etcd
snapshots (`etcd-snapshot-dir` default ${data-dir}/db/snapshots under server/). A node set up
with another data dir must get `data-dir:` in config.yaml, and the token read-back, the
reset's mounts and data, the killall and uninstall scripts must all follow it.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from test_k3s_config import ROLE_DEFAULTS, ROLE_VARS, include_vars

pytestmark = pytest.mark.slow

DATA_DIR = "/srv/k3s-data"
DEFAULT = "/var/lib/rancher/k3s"

PLAYBOOK = """
- name: Render the k3s files with a data dir
  hosts: k3s_servers
  gather_facts: false
  vars_files: {vars_files}
  tasks:
    - name: Server config
      ansible.builtin.template:
        src: {root}/roles/k3s/templates/config.yaml.j2
        dest: "{out}/config.yaml"
        mode: "0600"
      vars: {server_vars}
    - name: Scripts
      ansible.builtin.template:
        src: "{root}/roles/k3s/templates/{{{{ item }}}}.j2"
        dest: "{out}/{{{{ item }}}}"
        mode: "0600"
      loop: [k3s-killall.sh, k3s-uninstall.sh]
    - name: Paths the tasks use
      ansible.builtin.copy:
        dest: "{out}/paths.json"
        mode: "0600"
        content: "{{{{ paths | to_json }}}}"
      vars:
        paths:
          server_token_file: "{{{{ __k3s_server_token_file }}}}"
          images_dir: "{{{{ __k3s_images_dir }}}}"
          reset_mount_prefixes: "{{{{ __k3s_reset_mount_prefixes }}}}"
          reset_data_dirs: "{{{{ __k3s_reset_data_dirs }}}}"
          admission_config_file: "{{{{ __k3s_server_admission_config_file }}}}"
          audit_policy_file: "{{{{ __k3s_server_audit_policy_file }}}}"
          audit_log_file: "{{{{ __k3s_server_audit_log_file }}}}"
"""


def render(repo_root: Path, tmp_path: Path, extra: dict) -> dict:
    defaults: dict = {}
    for rel in ROLE_DEFAULTS:
        defaults.update(yaml.safe_load((repo_root / rel).read_text()))
    defaults.update({"__k3s_cluster_token": "0123456789abcdef0123456789abcdef", **extra})
    inv = tmp_path / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "group_vars" / "all.yml").write_text(yaml.safe_dump(defaults))
    host = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    (inv / "hosts.yml").write_text(yaml.safe_dump(
        {"all": {"children": {"k3s_cluster": {"children": {"k3s_servers": {"hosts": {"s1": host}}, "k3s_agents": {"hosts": {}}}}}}}))
    out = tmp_path / "out"
    out.mkdir()
    playbook = tmp_path / "render.yml"
    playbook.write_text(PLAYBOOK.format(
        root=repo_root, out=out, vars_files=json.dumps([str(repo_root / v) for v in ROLE_VARS]),
        server_vars=json.dumps(include_vars(repo_root, "k3s_server"))))
    proc = subprocess.run([str(repo_root / ".venv" / "bin" / "ansible-playbook"), str(playbook), "-i", str(inv)],
                          cwd=repo_root, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {
        "config": yaml.safe_load((out / "config.yaml").read_text()),
        "killall": (out / "k3s-killall.sh").read_text(),
        "uninstall": (out / "k3s-uninstall.sh").read_text(),
        "paths": json.loads((out / "paths.json").read_text()),
    }


def test_every_path_follows_the_data_dir(repo_root, tmp_path):
    got = render(repo_root, tmp_path, {"k3s_data_dir": DATA_DIR})
    assert got["config"]["data-dir"] == DATA_DIR
    paths = got["paths"]
    assert paths["server_token_file"] == f"{DATA_DIR}/server/token"
    assert paths["images_dir"] == f"{DATA_DIR}/agent/images"
    assert DATA_DIR in paths["reset_mount_prefixes"] and DATA_DIR in paths["reset_data_dirs"]
    for key in ("admission_config_file", "audit_policy_file", "audit_log_file"):
        assert paths[key].startswith(f"{DATA_DIR}/server/"), (key, paths[key])
    # the shims killall matches live under the data dir
    assert f"DATA_DIR={DATA_DIR}\n" in got["killall"]
    assert DATA_DIR in got["uninstall"]
    for text in (got["killall"], got["uninstall"], json.dumps(got["config"]), json.dumps(paths)):
        assert DEFAULT not in text


def test_default_data_dir_is_not_written(repo_root, tmp_path):
    """k3s's own default: config.yaml stays as before (no restart of existing nodes)."""
    got = render(repo_root, tmp_path, {})
    assert "data-dir" not in got["config"]
    assert got["paths"]["server_token_file"] == f"{DEFAULT}/server/token"
