"""Object storage bucket metadata survives backup -> damage -> restore, against a real
S3 API (moto's server, authentication on: s3_standin.py).

What is read and written back is what the S3 API exposes per bucket (botocore's model:
GetBucketPolicy/PutBucketPolicy, Get/PutBucketCors, Get/PutBucketLifecycleConfiguration,
Get/PutBucketTagging, Get/PutBucketVersioning), through amazon.aws ``s3_bucket_info`` /
``s3_bucket`` and community.aws ``s3_cors`` / ``s3_lifecycle``. The round trip is judged
by reading the metadata back with boto3 directly, not through the role.
"""
import json

import pytest
from ops_helpers import role_tasks, run_playbook
from s3_standin import S3

pytestmark = pytest.mark.slow
POLICY = {"Version": "2012-10-17", "Statement": [{"Sid": "read", "Effect": "Allow", "Principal": "*",
                                                  "Action": "s3:GetObject", "Resource": "arn:aws:s3:::datasets/*"}]}
CORS = [{"AllowedMethods": ["GET", "PUT"], "AllowedOrigins": ["https://lab.example.org"], "MaxAgeSeconds": 300}]
LIFECYCLE = [{"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 7},
              "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}}]

READ = """
def get(call, key, **kw):
    try:
        return call(**kw)[key]
    except s3.exceptions.ClientError:
        return None
out = {}
for b in sorted(b["Name"] for b in s3.list_buckets()["Buckets"]):
    policy = get(s3.get_bucket_policy, "Policy", Bucket=b)
    out[b] = {"policy": json.loads(policy) if policy else None,
              "cors": get(s3.get_bucket_cors, "CORSRules", Bucket=b),
              "lifecycle": get(s3.get_bucket_lifecycle_configuration, "Rules", Bucket=b),
              "tags": get(s3.get_bucket_tagging, "TagSet", Bucket=b),
              "versioning": s3.get_bucket_versioning(Bucket=b).get("Status")}
print(json.dumps(out))
"""


@pytest.fixture
def s3(tmp_path):
    server = S3(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def role_vars(s3, key=None, **more):
    key = key or s3.key
    return {"backup_s3_python": str(s3.python), "backup_object_storage_endpoint": s3.endpoint,
            "backup_object_storage_region": "us-east-1", "backup_object_storage_access_key": key["id"],
            "backup_object_storage_secret_key": key["secret"], "mlops_k8s_sink": "apply", **more}


def test_bucket_metadata_round_trip(s3, tmp_path):
    s3.client(f"""
s3.create_bucket(Bucket="datasets")
s3.put_bucket_policy(Bucket="datasets", Policy=json.dumps({POLICY!r}))
s3.put_bucket_cors(Bucket="datasets", CORSConfiguration={{"CORSRules": {CORS!r}}})
s3.put_bucket_lifecycle_configuration(Bucket="datasets", LifecycleConfiguration={{"Rules": {LIFECYCLE!r}}})
s3.put_bucket_tagging(Bucket="datasets", Tagging={{"TagSet": [{{"Key": "team", "Value": "ml"}}]}})
s3.put_bucket_versioning(Bucket="datasets", VersioningConfiguration={{"Status": "Enabled"}})
s3.create_bucket(Bucket="models")
s3.create_bucket(Bucket="workflow-artifacts")
s3.put_bucket_tagging(Bucket="workflow-artifacts", Tagging={{"TagSet": [{{"Key": "ttl", "Value": "30d"}}]}})
""")
    before = s3.client(READ)
    assert before["datasets"]["cors"] == CORS and before["datasets"]["lifecycle"] == LIFECYCLE  # the stand-in kept them

    backup = tmp_path / "researchops-test"
    backup.mkdir()
    run_playbook(role_tasks("object_storage.yml", role_vars(s3, __backup_dir=str(backup))), tmp_path)
    saved = json.loads((backup / "object-storage.json").read_text())
    assert [b["name"] for b in saved] == ["datasets", "models", "workflow-artifacts"]
    assert s3.key["secret"] not in (backup / "object-storage.json").read_text()

    # Damage: a bucket gone, the other's policy, CORS, lifecycle and tags dropped, versioning suspended.
    s3.client("""
s3.delete_bucket(Bucket="models")
s3.delete_bucket_policy(Bucket="datasets")
s3.delete_bucket_cors(Bucket="datasets")
s3.delete_bucket_lifecycle(Bucket="datasets")
s3.delete_bucket_tagging(Bucket="datasets")
s3.put_bucket_versioning(Bucket="datasets", VersioningConfiguration={"Status": "Suspended"})
s3.put_bucket_tagging(Bucket="workflow-artifacts", Tagging={"TagSet": [{"Key": "stray", "Value": "x"}]})
""")
    assert s3.client(READ) != before

    run_playbook(role_tasks("restore_object_storage.yml", role_vars(s3, backup_restore_from=str(backup))), tmp_path)
    assert s3.client(READ) == before


def test_a_refused_key_fails_the_backup(s3, tmp_path):
    proc = run_playbook(role_tasks("object_storage.yml", role_vars(
        s3, {"id": "AKIAWRONGKEY0000", "secret": "not-the-secret-key-1234"}, __backup_dir=str(tmp_path))),
        tmp_path, check=False)
    assert proc.returncode != 0
    assert "InvalidAccessKeyId" in proc.stdout, proc.stdout[-3000:]
    assert "not-the-secret-key-1234" not in proc.stdout
    assert not (tmp_path / "object-storage.json").exists()


def test_a_lifecycle_rule_the_restore_cannot_write_stops_it(s3, tmp_path):
    (tmp_path / "object-storage.json").write_text(json.dumps([{"name": "datasets", "bucket_lifecycle_configuration": {
        "Rules": [{"ID": "cold", "Status": "Enabled", "Filter": {"Prefix": ""},
                   "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]}]}}]))
    proc = run_playbook(role_tasks("restore_object_storage.yml", role_vars(s3, backup_restore_from=str(tmp_path))),
                        tmp_path, check=False)
    assert proc.returncode != 0
    assert "lifecycle rule cold has fields this restore does not write back" in proc.stdout, proc.stdout[-3000:]
    assert "datasets" not in s3.client("print(json.dumps([b['Name'] for b in s3.list_buckets()['Buckets']]))")
