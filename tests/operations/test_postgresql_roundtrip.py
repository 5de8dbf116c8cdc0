"""Every database survives backup -> damage -> restore, against a real PostgreSQL.

The server comes from the Debian packages (scripts/host-deps.sh installs `postgresql`);
the test runs its own instance (initdb in a temp dir, a free port, a Unix socket there,
as the unprivileged `postgres` user when run as root) and the backup role's own task
files with the client tools run locally instead of through `kubectl exec`
(backup_postgresql_exec: []). pg_dump/pg_restore behaviour per the PostgreSQL docs
(pg_restore --create --clean: drop and recreate the database named in the archive).
"""
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from ops_helpers import role_tasks, run_playbook

pytestmark = pytest.mark.slow
BINDIRS = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def _as_postgres(argv):
    return (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + argv


@pytest.fixture(scope="module")
def postgres():
    if not BINDIRS:
        pytest.fail("PostgreSQL server binaries not found: run scripts/host-deps.sh (Debian package postgresql)")
    bindir = Path(BINDIRS[-1])
    base = Path(tempfile.mkdtemp(prefix="researchops-pg-", dir="/tmp"))
    base.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = base / "data"
    subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "--auth=trust", "--username=postgres"]),
                   check=True, capture_output=True)
    subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "start",
                                 "-o", f"-p {port} -k {base} -c listen_addresses=''"]), check=True, capture_output=True)
    env = {"PGHOST": str(base), "PGPORT": str(port)}
    try:
        yield env
    finally:
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


def psql(env, sql, db="postgres"):
    proc = subprocess.run(["psql", "--username=postgres", f"--dbname={db}", "--no-psqlrc", "--tuples-only",
                           "--no-align", "--set=ON_ERROR_STOP=1", f"--command={sql}"],
                          env=dict(os.environ, **env), capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def role_vars(env, **more):
    return {"backup_postgresql_exec": [], "backup_postgresql_user": "postgres",
            "backup_postgresql_environment": env, "mlops_k8s_sink": "render", **more}


def test_dump_and_restore_every_database(postgres, tmp_path):
    psql(postgres, "CREATE ROLE harbor LOGIN")
    psql(postgres, "CREATE DATABASE registry OWNER harbor")
    psql(postgres, "CREATE DATABASE mlflow")
    psql(postgres, "CREATE TABLE artifact (id int PRIMARY KEY, digest text); "
                   "INSERT INTO artifact SELECT g, md5(g::text) FROM generate_series(1, 500) g", db="registry")
    psql(postgres, "CREATE TABLE run (name text); INSERT INTO run VALUES ('mnist-1'), ('mnist-2')", db="mlflow")
    before = psql(postgres, "SELECT count(*), md5(string_agg(digest, ',' ORDER BY id)) FROM artifact", db="registry")

    backup = tmp_path / "researchops-test"
    backup.mkdir()
    run_playbook(role_tasks("postgresql.yml", role_vars(postgres, __backup_dir=str(backup))), tmp_path)
    assert sorted(p.name for p in backup.iterdir()) == [
        "postgresql-databases.json", "postgresql-globals.sql", "postgresql-mlflow.dump", "postgresql-registry.dump"]

    # Damage: rows gone in one database, the other database dropped.
    psql(postgres, "DELETE FROM artifact WHERE id > 10", db="registry")
    psql(postgres, "DROP DATABASE mlflow")

    run_playbook(role_tasks("restore_data.yml", role_vars(postgres, backup_restore_from=str(backup))), tmp_path)
    assert psql(postgres, "SELECT count(*), md5(string_agg(digest, ',' ORDER BY id)) FROM artifact",
                db="registry") == before
    assert psql(postgres, "SELECT string_agg(name, ',' ORDER BY name) FROM run", db="mlflow") == "mnist-1,mnist-2"
    assert psql(postgres, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'registry'") == "harbor"


def test_a_damaged_dump_fails_the_restore(postgres, tmp_path):
    backup = tmp_path / "researchops-bad"
    backup.mkdir()
    (backup / "postgresql-databases.json").write_text('["ghost"]')
    (backup / "postgresql-globals.sql").write_text("")
    (backup / "postgresql-ghost.dump").write_bytes(b"PGDMP this is not an archive")
    proc = run_playbook(role_tasks("restore_data.yml", role_vars(postgres, backup_restore_from=str(backup))),
                        tmp_path, check=False)
    assert proc.returncode != 0
    assert "pg_restore" in proc.stdout
