"""OS variable and package choices of the node roles, per distribution.

openEuler, Ubuntu, Raspberry Pi OS and Rocky machines cannot be had in CI, so each
role's real `tasks/variables.yml` runs through ansible-playbook against localhost
stand-in hosts whose facts come from recorded fact sets (fixtures/os_facts/*.json,
loaded via a jsonfile fact cache, no fact gathering). The resolved public variables are
written out and asserted.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
FACTS_DIR = HERE / "fixtures" / "os_facts"
REPO = HERE.parents[1]
NODE_ROLES = ["prereqs", "nfs_client", "nfs_server", "docker", "nvidia_runtime"]

PLAYBOOK = """
- name: Resolve the node roles' OS variables from recorded facts
  hosts: all
  gather_facts: false
  tasks:
    - name: Load prereqs variables
      ansible.builtin.include_role:
        name: researchops.mlops.prereqs
        tasks_from: variables.yml
    - name: Load nfs_client variables
      ansible.builtin.include_role:
        name: researchops.mlops.nfs_client
        tasks_from: variables.yml
    - name: Load nfs_server variables
      ansible.builtin.include_role:
        name: researchops.mlops.nfs_server
        tasks_from: variables.yml
    - name: Load docker variables
      ansible.builtin.include_role:
        name: researchops.mlops.docker
        tasks_from: variables.yml
    - name: Load nvidia_runtime variables
      ansible.builtin.include_role:
        name: researchops.mlops.nvidia_runtime
        tasks_from: variables.yml
    - name: Write what they resolved to
      ansible.builtin.copy:
        dest: "{{ out_dir }}/{{ inventory_hostname }}.json"
        mode: "0644"
        content: "{{ resolved | to_nice_json }}"
      vars:
        resolved:
          prereqs_packages: "{{ prereqs_packages }}"
          prereqs_time_sync_package: "{{ prereqs_time_sync_package }}"
          prereqs_time_sync_service: "{{ prereqs_time_sync_service }}"
          prereqs_raspberry_pi_packages: "{{ __prereqs_raspberry_pi_packages }}"
          nfs_client_packages: "{{ nfs_client_packages }}"
          nfs_server_packages: "{{ nfs_server_packages }}"
          nfs_server_service: "{{ nfs_server_service }}"
          docker_install_source: "{{ docker_install_source }}"
          docker_packages: "{{ docker_packages }}"
          docker_repo_url: "{{ docker_repo_url }}"
          docker_repo_gpg_key_url: "{{ docker_repo_gpg_key_url }}"
          nvidia_runtime_package_format: "{{ __nvidia_runtime_package_format }}"
          nvidia_runtime_driver_hint: "{{ __nvidia_runtime_driver_hint }}"
"""


@pytest.fixture(scope="module")
def resolved(tmp_path_factory, ansible_env) -> dict[str, dict]:
    work = tmp_path_factory.mktemp("os_vars")
    cache = work / "facts"
    cache.mkdir()
    out = work / "out"
    out.mkdir()
    hosts = sorted(p.stem for p in FACTS_DIR.glob("*.json"))
    # Fill the cache through the cache plugin itself (its on-disk format is internal).
    seed = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from ansible.plugins.loader import cache_loader, init_plugin_loader\n"
        "init_plugin_loader()\n"
        "cache = cache_loader.get('ansible.builtin.jsonfile', _uri=sys.argv[1])\n"
        "for path in sys.argv[2:]:\n"
        "    cache.set(Path(path).stem, json.loads(Path(path).read_text()))\n"
    )
    subprocess.run([sys.executable, "-c", seed, str(cache), *(str(FACTS_DIR / f"{name}.json") for name in hosts)],
                   env=ansible_env, check=True, timeout=120)
    inventory = {"all": {"hosts": {name: {"ansible_connection": "local",
                                          "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
                                   for name in hosts},
                         "vars": {"out_dir": str(out)}}}
    (work / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (work / "playbook.yml").write_text(PLAYBOOK)
    env = dict(ansible_env)
    env.update({
        "ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache),
        "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "0",
        "ANSIBLE_GATHERING": "explicit",
    })
    run = subprocess.run(
        ["ansible-playbook", "-i", str(work / "inventory.yml"), str(work / "playbook.yml")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    result = {name: json.loads((out / f"{name}.json").read_text()) for name in hosts}
    assert set(result) == {"debian-12", "ubuntu-24.04", "raspios-12", "openeuler-24.03", "rocky-9"}
    return result


@pytest.mark.slow
def test_openeuler(resolved):
    v = resolved["openeuler-24.03"]
    assert v["nfs_client_packages"] == ["nfs-utils"]
    assert v["nfs_server_packages"] == ["nfs-utils"]
    assert v["nfs_server_service"] == "nfs-server"
    assert (v["prereqs_time_sync_package"], v["prereqs_time_sync_service"]) == ("chrony", "chronyd")
    assert "conntrack-tools" in v["prereqs_packages"] and "gnupg2" in v["prereqs_packages"]
    # openEuler's own Docker build; no Docker repository exists for it.
    assert v["docker_install_source"] == "distro"
    assert v["docker_packages"] == ["docker-engine"]
    assert v["docker_repo_url"] == ""
    assert v["nvidia_runtime_package_format"] == "rpm"
    assert "openEuler" in v["nvidia_runtime_driver_hint"]


@pytest.mark.slow
@pytest.mark.parametrize("host", ["debian-12", "raspios-12"])
def test_debian_and_raspberry_pi_os(resolved, host):
    v = resolved[host]
    assert v["nfs_client_packages"] == ["nfs-common"]
    assert v["nfs_server_packages"] == ["nfs-kernel-server"]
    assert (v["prereqs_time_sync_package"], v["prereqs_time_sync_service"]) == ("systemd-timesyncd", "systemd-timesyncd")
    assert "conntrack" in v["prereqs_packages"] and "iptables" in v["prereqs_packages"]
    assert v["docker_install_source"] == "distro"
    assert v["docker_packages"] == ["docker.io"]
    assert v["docker_repo_url"] == "https://download.docker.com/linux/debian"
    assert v["docker_repo_gpg_key_url"] == "https://download.docker.com/linux/debian/gpg"
    assert v["nvidia_runtime_package_format"] == "deb"


@pytest.mark.slow
def test_ubuntu(resolved):
    v = resolved["ubuntu-24.04"]
    assert v["nfs_client_packages"] == ["nfs-common"]
    assert v["prereqs_time_sync_service"] == "systemd-timesyncd"
    assert v["docker_packages"] == ["docker.io"]
    assert v["docker_repo_url"] == "https://download.docker.com/linux/ubuntu"


@pytest.mark.slow
def test_rocky(resolved):
    v = resolved["rocky-9"]
    assert v["nfs_client_packages"] == ["nfs-utils"]
    assert v["prereqs_time_sync_service"] == "chronyd"
    # RHEL family ships no Docker: Docker's own repository by default.
    assert v["docker_install_source"] == "docker_repo"
    assert v["docker_packages"][0] == "docker-ce"
    assert v["docker_repo_url"] == "https://download.docker.com/linux/rhel"
    assert v["nvidia_runtime_package_format"] == "rpm"


def test_no_docker_convenience_script():
    """get.docker.com refuses openEuler and is unpinned: no node role may use it."""
    for role in NODE_ROLES:
        for path in (REPO / "roles" / role).rglob("*.yml"):
            assert "get.docker.com" not in path.read_text(), path


def _commented_defaults(text: str) -> set[str]:
    """`# name: value` lines of defaults/main.yml: OS-specific variables documented there."""
    names = set()
    for line in text.splitlines():
        stripped = line.lstrip("# ").rstrip()
        if line.startswith("# ") and ":" in stripped:
            key = stripped.split(":", 1)[0]
            if key.split("_", 1)[0] and key.replace("_", "").isalnum() and " " not in key:
                names.add(key)
    return names


@pytest.mark.parametrize("role", NODE_ROLES)
def test_argument_specs_match_defaults(role):
    """Every option of meta/argument_specs.yml is a default (set, or documented as
    OS-specific in a comment) and every default is an option, with the same value."""
    role_dir = REPO / "roles" / role
    text = (role_dir / "defaults" / "main.yml").read_text()
    defaults = yaml.safe_load(text) or {}
    options = yaml.safe_load((role_dir / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    prefix = role + "_"
    assert all(name.startswith(prefix) for name in defaults), role
    missing = set(defaults) - set(options)
    assert not missing, f"{role}: defaults without argument_specs option: {missing}"
    documented = set(defaults) | (_commented_defaults(text) & set(options))
    extra = {name for name in options if name.startswith(prefix)} - documented
    assert not extra, f"{role}: argument_specs options missing from defaults/main.yml: {extra}"
    for name, value in defaults.items():
        spec = options[name]
        if isinstance(value, str) and "{{" in value:
            assert "default" not in spec, f"{role}: {name} is templated; its spec must not carry a default"
            continue
        assert spec.get("default") == value or str(spec.get("default")) == str(value), f"{role}: {name}"


@pytest.mark.slow
def test_raspberry_pi_extras_per_distribution(resolved):
    """Ubuntu's Raspberry Pi kernel keeps the vxlan module flannel needs in
    linux-modules-extra-raspi (Ubuntu's linux-raspi packaging); Raspberry Pi OS and Debian
    ship it in the kernel package."""
    assert resolved["ubuntu-24.04"]["prereqs_raspberry_pi_packages"] == ["linux-modules-extra-raspi"]
    for name in ("raspios-12", "debian-12", "openeuler-24.03", "rocky-9"):
        assert resolved[name]["prereqs_raspberry_pi_packages"] == [], name


def test_every_os_vars_file_can_be_selected():
    """The roles pick vars/<distribution>-<major>.yml, <distribution>.yml or <os_family>.yml
    from the facts. A file no recorded machine's facts name is never loaded: Raspberry Pi
    OS reports distribution Debian (see fixtures/os_facts/raspios-12.json), so a
    Raspbian.yml is dead code and its settings silently missing."""
    names = set()
    for path in FACTS_DIR.glob("*.json"):
        facts = json.loads(path.read_text())
        names |= {f"{facts['ansible_distribution']}-{facts['ansible_distribution_major_version']}",
                  facts["ansible_distribution"], facts["ansible_os_family"]}
    dead = []
    for role in NODE_ROLES + ["k3s"]:
        for path in (REPO / "roles" / role / "vars").glob("*.yml"):
            if path.stem != "main" and path.stem not in names:
                dead.append(f"roles/{role}/vars/{path.name}")
    assert dead == []


def test_nodes_playbook_reboots_servers_one_at_a_time():
    """The prereqs role must not reboot every Pi server at once from its handler (etcd
    loses quorum when a majority of its members is down): the nodes playbook defers the
    reboot and runs it servers serial 1, agents in batches."""
    plays = yaml.safe_load((REPO / "playbooks" / "nodes.yml").read_text())
    first = plays[0]
    prereqs = next(r for r in first["roles"] if r["role"] == "researchops.mlops.prereqs")
    assert prereqs["vars"]["prereqs_reboot_now"] is False
    reboots = {p["hosts"]: p for p in plays if any(
        t.get("ansible.builtin.include_role", {}).get("tasks_from") == "reboot.yml" for t in p.get("tasks", []))}
    assert set(reboots) == {"k3s_servers", "k3s_agents"}
    assert reboots["k3s_servers"]["serial"] == 1
    assert plays.index(reboots["k3s_servers"]) < plays.index(reboots["k3s_agents"])
    handlers = yaml.safe_load((REPO / "roles/prereqs/handlers/main.yml").read_text())
    reboot = next(h for h in handlers if "ansible.builtin.reboot" in h)
    assert "prereqs_reboot_now | bool" in reboot["when"]
