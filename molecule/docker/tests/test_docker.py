"""Verify researchops.mlops.docker on the molecule container (dockerd itself cannot run here)."""
import json


def test_engine_installed(host):
    assert host.package("docker.io").is_installed
    assert host.run("dockerd --version").rc == 0


def test_daemon_json(host):
    f = host.file("/etc/docker/daemon.json")
    assert f.is_file and f.mode == 0o644
    assert json.loads(f.content_string) == {
        "data-root": "/srv/docker",
        "default-runtime": "nvidia",
        "exec-opts": ["native.cgroupdriver=systemd"],
        "log-driver": "json-file",
        "log-opts": {"max-file": "3", "max-size": "20m"},
        "registry-mirrors": ["https://harbor.lab.example.org"],
        "runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}},
    }


def test_service_enabled(host):
    assert host.service("docker").is_enabled


def test_user_in_docker_group(host):
    assert "docker" in host.user("researchops").groups
