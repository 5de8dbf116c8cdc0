"""Verify the docker role's repository path against the test's own signed repository."""


def test_prerequisites_installed(host):
    assert host.package("python3-debian").is_installed
    assert host.package("gpg").is_installed


def test_repository_added_with_its_key(host):
    sources = host.file("/etc/apt/sources.list.d/docker.sources")
    assert sources.is_file
    content = sources.content_string
    assert "URIs: http://127.0.0.1:8079/debian" in content
    assert "Signed-By: /etc/apt/keyrings/docker.asc" in content
    assert "Suites: bookworm" in content and "Components: stable" in content


def test_packages_from_the_repository(host):
    for pkg in ("docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin"):
        assert host.package(pkg).is_installed, pkg
        assert host.package(pkg).version == "5:99.0.0-1~debian.12~bookworm"
    policy = host.check_output("apt-cache policy docker-ce")
    assert "http://127.0.0.1:8079/debian bookworm/stable amd64 Packages" in policy


def test_service_enabled(host):
    assert host.service("docker").is_enabled
