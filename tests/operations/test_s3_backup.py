"""The backup's S3 target against a real S3 API (moto's server on loopback, authentication
on: s3_standin.py): playbooks/backup.yml uploads each backup under
<backup_s3_prefix>/researchops-<stamp>/, keeps the newest backup_keep there, and
playbooks/restore.yml downloads a backup that is not on the controller and restores it.

S3 behaviour from the S3 API reference as botocore's model encodes it (PutObject,
ListObjectsV2 with Prefix, DeleteObject; InvalidAccessKeyId for an unknown key), through
amazon.aws ``s3_object`` (modes put, list, delobj, get). The k3s side is the stand-in of
test_k3s_snapshot.py (conftest ``cluster``).
"""
import json
import shutil

import pytest
from ops_helpers import TOKEN, calls, run_playbook
from s3_standin import S3

pytestmark = pytest.mark.slow
BUCKET = "lab-backups"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = S3(tmp_path_factory.mktemp("moto"))
    server.client(f"s3.create_bucket(Bucket={BUCKET!r})")
    try:
        yield server
    finally:
        server.stop()


def s3_vars(s3, prefix, **more):
    return {"backup_s3_bucket": BUCKET, "backup_s3_prefix": prefix, "backup_s3_endpoint": s3.endpoint,
            "backup_s3_python": str(s3.python), **more}


def test_upload_retention_and_restore_from_s3(s3, cluster):
    # Already in the bucket: an older backup of this lab, something else under the prefix,
    # and another lab's backup under another prefix. Retention touches only the first.
    s3.client("""
for key in ("lab1/researchops-20200101T000000Z/backup.json", "lab1/researchops-20200101T000000Z/etcd-snapshot",
            "lab1/notes.txt", "lab2/researchops-20190101T000000Z/backup.json"):
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"old")
""".replace("BUCKET", repr(BUCKET)))
    env = dict(cluster["env"], **s3.env())
    extra = s3_vars(s3, "lab1", backup_keep=2)
    run_playbook("playbooks/backup.yml", cluster["tmp"], inventory=cluster["inventory"], env=env, extra=extra)
    (first,) = (cluster["tmp"] / "backups").glob("researchops-*")
    files = sorted(p.name for p in first.iterdir())
    assert files == ["backup.json", "etcd-snapshot", "k3s-token.vault"]
    assert s3.keys(BUCKET, "lab1/") == sorted(
        ["lab1/notes.txt", "lab1/researchops-20200101T000000Z/backup.json",
         "lab1/researchops-20200101T000000Z/etcd-snapshot"] + [f"lab1/{first.name}/{f}" for f in files])

    run_playbook("playbooks/backup.yml", cluster["tmp"], inventory=cluster["inventory"], env=env, extra=extra)
    (second,) = set((cluster["tmp"] / "backups").glob("researchops-*")) - {first}
    assert second.name > first.name
    # Three backups under lab1 with backup_keep=2: the oldest is gone, the rest untouched.
    assert s3.keys(BUCKET) == sorted(
        ["lab1/notes.txt", "lab2/researchops-20190101T000000Z/backup.json"]
        + [f"lab1/{b.name}/{f}" for b in (first, second) for f in files])

    # The controller lost its backups: the restore reads the second one back from S3.
    snapshot = (second / "etcd-snapshot").read_bytes()
    shutil.rmtree(cluster["tmp"] / "backups")
    target = cluster["tmp"] / "restore" / second.name
    saves = len(calls(cluster))
    run_playbook("playbooks/restore.yml", cluster["tmp"], inventory=cluster["inventory"], env=env,
                 extra=dict(extra, backup_restore_from=str(target), backup_restore_confirm="restore-cluster"))
    assert (target / "etcd-snapshot").read_bytes() == snapshot
    assert json.loads((target / "backup.json").read_text())["created"] == second.name
    restored = f"{cluster['tmp']}/srv1/k3s/server/db/snapshots/{second.name}"
    assert calls(cluster)[saves:] == [
        ["server", "--cluster-reset", f"--cluster-reset-restore-path={restored}", f"--token={TOKEN}"]]


def test_wrong_credentials_fail_the_backup_with_a_clear_message(s3, cluster):
    env = dict(cluster["env"], **s3.env({"id": "AKIAWRONGKEY0000", "secret": "not-the-secret-key-1234"}))
    proc = run_playbook("playbooks/backup.yml", cluster["tmp"], inventory=cluster["inventory"], env=env,
                        extra=s3_vars(s3, "wrongkey"), check=False)
    assert proc.returncode != 0
    # amazon.aws s3_object's bucket check turns the refused request into this message.
    assert "S3 upload of researchops-" in proc.stdout, proc.stdout[-3000:]
    assert "Permission denied accessing bucket 'lab-backups'" in proc.stdout
    assert "Check the credentials" in proc.stdout
    assert "not-the-secret-key-1234" not in proc.stdout
    assert s3.keys(BUCKET, "wrongkey/") == []


def test_restore_of_a_backup_that_is_not_in_the_bucket_fails(s3, cluster):
    proc = run_playbook("playbooks/restore.yml", cluster["tmp"], inventory=cluster["inventory"],
                        env=dict(cluster["env"], **s3.env()), check=False,
                        extra=dict(s3_vars(s3, "lab9"), backup_restore_confirm="restore-cluster",
                                   backup_restore_from=str(cluster["tmp"] / "researchops-20990101T000000Z")))
    assert proc.returncode != 0
    assert "Restore download of s3://lab-backups/lab9/researchops-20990101T000000Z/" in proc.stdout, proc.stdout[-3000:]
    assert not cluster["log"].exists(), "a node was touched although the backup could not be read"
