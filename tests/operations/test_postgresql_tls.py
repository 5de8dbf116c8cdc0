"""The rendered PostgreSQL TLS settings, run by a real PostgreSQL server (docs/security.md).

The postgresql role is rendered; its server arguments (`-c ssl=on`, certificate, key and
hba_file), its pg_hba.conf ConfigMap and its key file mode are given to a server of the
Debian packages (scripts/host-deps.sh installs `postgresql`) listening on 127.0.0.2 (not
the loopback address 127.0.0.1 the image's trust lines cover: a pod's address), with a
certificate signed by a test CA for the Certificate's dnsNames, and the key file owned as
the kubelet leaves a Secret volume file with fsGroup: root, group fsGroup, defaultMode with
group read added (kubernetes pkg/volume/volume_linux.go, read-only mask 0440).

Expected behaviour from the PostgreSQL docs ("The pg_hba.conf File": hostssl matches only
TLS connections; "SSL Support" in libpq: sslmode disable/require/verify-full) and
src/backend/libpq/be-secure-common.c check_ssl_key_file_permissions (the server does not
start with a key file it considers unsafe)."""
import glob
import grp
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from ops_helpers import run_playbook

pytestmark = pytest.mark.slow
BINDIRS = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
ADDRESS = "127.0.0.2"
PASSWORD = "tls-test-password-3d9"


def _as_postgres(argv):
    return ["runuser", "-u", "postgres", "--"] + argv


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("pg-render")
    run_playbook(str(Path(__file__).resolve().parents[2] / "playbooks" / "platform.yml"), out,
                 extra={"mlops_render_dir": str(out)}, env={"ANSIBLE_RUN_TAGS": "postgresql"})
    objects = [yaml.safe_load(p.read_text()) for p in sorted((out / "platform" / "postgresql").glob("*.yaml"))
               if p.name != "kustomization.yaml"]
    sts = next(o for o in objects if o["kind"] == "StatefulSet")
    spec = sts["spec"]["template"]["spec"]
    container = spec["containers"][0]
    args = container["args"]
    settings = dict(args[i + 1].split("=", 1) for i in range(len(args) - 1) if args[i] == "-c")
    tls_volume = next(v for v in spec["volumes"] if v.get("secret", {}).get("secretName") == "postgresql-tls")
    hba_volume = next(v for v in spec["volumes"] if "configMap" in v and v["name"] == "hba")
    hba = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == hba_volume["configMap"]["name"])
    certificate = next(o for o in objects if o["kind"] == "Certificate")
    return {"settings": settings, "key_mode": tls_volume["secret"]["defaultMode"], "hba": hba["data"]["pg_hba.conf"],
            "dns_names": certificate["spec"]["dnsNames"], "uid": spec["securityContext"]["fsGroup"]}


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=folder)
    return folder / f"{name}.crt"


@pytest.fixture(scope="module")
def server(rendered):
    if not BINDIRS:
        pytest.fail("PostgreSQL server binaries not found: run scripts/host-deps.sh (Debian package postgresql)")
    if os.geteuid() != 0:
        pytest.skip("needs root: the key file must be owned as the kubelet leaves it (root, group fsGroup)")
    bindir = Path(BINDIRS[-1])
    base = Path(tempfile.mkdtemp(prefix="researchops-pgtls-", dir="/tmp"))
    base.chmod(0o755)
    shutil.chown(base, "postgres", "postgres")
    pki = base / "pki"
    pki.mkdir()
    ca = make_ca(pki, "lab-ca")
    make_ca(pki, "other-ca")
    names = rendered["dns_names"]
    (pki / "san.ext").write_text("subjectAltName=" + ",".join(f"DNS:{n}" for n in names) + "\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={names[-1]}", "-keyout", "server.key",
            "-out", "server.csr", cwd=pki)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "lab-ca.crt", "-CAkey", "lab-ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.ext", "-out", "server.crt", cwd=pki)
    # The Secret volume as the kubelet writes it: root-owned, group = the postgres group
    # standing in for fsGroup, defaultMode | 0440.
    tls = base / "tls"
    tls.mkdir()
    for src, dst in (("server.crt", "tls.crt"), ("server.key", "tls.key")):
        shutil.copy(pki / src, tls / dst)
        os.chown(tls / dst, 0, grp.getgrnam("postgres").gr_gid)
        (tls / dst).chmod(rendered["key_mode"] | 0o440)
    tls.chmod(0o755)
    hba = base / "pg_hba.conf"
    # A client on this host connects from 127.0.0.1 whatever address it dials (the kernel
    # picks lo's source address), which the image's loopback trust line covers; a pod's
    # address is not loopback. That one line moves to an unused loopback address, so the
    # connections below are judged by the lines a pod's connection meets.
    assert "127.0.0.1/32" in rendered["hba"]
    hba.write_text(rendered["hba"].replace("127.0.0.1/32", "127.0.0.3/32"))
    shutil.chown(hba, "postgres", "postgres")
    settings = dict(rendered["settings"], ssl_cert_file=str(tls / "tls.crt"), ssl_key_file=str(tls / "tls.key"),
                    hba_file=str(hba))
    with socket.socket() as s:
        s.bind((ADDRESS, 0))
        port = s.getsockname()[1]
    data = base / "data"
    subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "--auth=trust", "--username=postgres"]),
                   check=True, capture_output=True)
    options = f"-p {port} -k {base} -c listen_addresses={ADDRESS} " + " ".join(f"-c {k}={v}" for k, v in settings.items())
    started = subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w",
                                           "start", "-o", options]), capture_output=True, text=True, check=False)
    assert started.returncode == 0, (base / "log").read_text() if (base / "log").exists() else started.stderr
    subprocess.run(["psql", "-h", str(base), "-p", str(port), "-U", "postgres", "-d", "postgres", "--no-psqlrc",
                    "-c", f"ALTER ROLE postgres PASSWORD '{PASSWORD}'"], check=True, capture_output=True)
    try:
        yield {"port": port, "ca": ca, "other_ca": pki / "other-ca.crt", "names": names}
    finally:
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, check=False)
        time.sleep(0.2)
        shutil.rmtree(base, ignore_errors=True)


def connect(server, **params):
    conninfo = " ".join(f"{k}={v}" for k, v in dict(
        {"hostaddr": ADDRESS, "host": server["names"][-1], "port": server["port"], "user": "postgres",
         "dbname": "postgres", "password": PASSWORD, "connect_timeout": 5}, **params).items())
    return subprocess.run(["psql", conninfo, "--no-psqlrc", "--tuples-only", "--no-align", "-c",
                           "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"],
                          env={"PATH": os.environ["PATH"], "PGSSLROOTCERT": "/nonexistent"},
                          capture_output=True, text=True, check=False)


def test_plain_tcp_logins_are_refused(server):
    result = connect(server, sslmode="disable")
    assert result.returncode != 0
    assert "no pg_hba.conf entry" in result.stderr and "no encryption" in result.stderr


def test_harbors_sslmode_require_connects_over_tls(server):
    result = connect(server, sslmode="require")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "t"


def test_the_setup_jobs_verify_full_checks_the_lab_ca_and_the_name(server):
    ok = connect(server, sslmode="verify-full", sslrootcert=server["ca"])
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "t"
    wrong_ca = connect(server, sslmode="verify-full", sslrootcert=server["other_ca"])
    assert wrong_ca.returncode != 0 and "certificate verify failed" in wrong_ca.stderr
    wrong_name = connect(server, sslmode="verify-full", sslrootcert=server["ca"], host="postgresql.other.svc")
    assert wrong_name.returncode != 0 and "does not match host name" in wrong_name.stderr
