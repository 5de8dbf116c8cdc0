"""A real S3 API on loopback for the backup tests: moto's server (``moto_server``), with
authentication on, so a wrong key is refused as AWS refuses it (InvalidAccessKeyId,
SignatureDoesNotMatch) and a key only does what its IAM policy allows.

moto docs, "Server mode" and "IAM-like Access Control": ``INITIAL_NO_AUTH_ACTION_COUNT``
requests are served unauthenticated, every later one must be signed by an access key of
moto's IAM backend. The first requests create that user, its key and its policy.

boto3/moto live in their own virtualenv (.cache/s3-venv, from requirements-s3.txt beside
this file): botocore pins python-dateutil<3, kubernetes 37 (project venv) needs >=3.
"""
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = Path(__file__).with_name("requirements-s3.txt")
VENV = REPO / ".cache" / "s3-venv"
SETUP_ACTIONS = 3  # create_user, create_access_key, put_user_policy


def s3_venv():
    """The S3 virtualenv's python, (re)built when requirements-s3.txt changed."""
    want = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = VENV / ".requirements.sha256"
    python = VENV / "bin" / "python"
    if not (python.exists() and stamp.exists() and stamp.read_text() == want):
        shutil.rmtree(VENV, ignore_errors=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(VENV)], check=True)
        proc = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"pip install -r {REQUIREMENTS} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        stamp.write_text(want)
    return python


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _boto(python, code, **env):
    """Run boto3 code in the S3 venv (the project venv has no boto3); returns its JSON output."""
    proc = subprocess.run([str(python), "-c", code], env=dict(os.environ, **env), capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout or "null")


class S3:
    """A running moto S3 server and one IAM user's key allowed s3:*."""

    def __init__(self, tmp):
        self.python = s3_venv()
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.key = None
        self.log = open(tmp / "moto.log", "w", encoding="utf-8")
        self.proc = subprocess.Popen([str(self.python.with_name("moto_server")), "-H", "127.0.0.1", "-p", str(self.port)],
                                     env=dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(SETUP_ACTIONS)),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self._setup(tmp)
        except BaseException:
            self.stop()
            raise

    def _setup(self, tmp):
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                break
            except OSError:
                assert self.proc.poll() is None, (tmp / "moto.log").read_text()
                assert time.monotonic() < deadline, "moto_server did not listen within 60 s"
                time.sleep(0.2)
        self.key = self.client("""
iam = boto3.client("iam", endpoint_url=URL, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
iam.create_user(UserName="backup")
key = iam.create_access_key(UserName="backup")["AccessKey"]
iam.put_user_policy(UserName="backup", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
print(json.dumps({"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}))
""", key={"id": "setup", "secret": "setup"})
        refused = self.client("""
try:
    s3.list_buckets()
    print(json.dumps(None))
except s3.exceptions.ClientError as e:
    print(json.dumps(e.response["Error"]["Code"]))
""", key={"id": "AKIANOTAKEY00000", "secret": "wrong"})
        assert refused == "InvalidAccessKeyId", f"the S3 stand-in accepted an unknown key ({refused})"

    def env(self, key=None):
        """Environment of a play that talks to this server (the AWX AWS credential's variables)."""
        key = key or self.key
        return {"AWS_ACCESS_KEY_ID": key["id"], "AWS_SECRET_ACCESS_KEY": key["secret"], "AWS_DEFAULT_REGION": "us-east-1"}

    def client(self, body, key=None):
        """Run body with ``s3`` (a boto3 S3 client with the user's key), URL, json in scope."""
        key = key or self.key
        code = (f"import boto3, json\nURL = {self.endpoint!r}\n"
                f"s3 = boto3.client('s3', endpoint_url=URL, region_name='us-east-1', "
                f"aws_access_key_id={key['id']!r}, aws_secret_access_key={key['secret']!r})\n{body}")
        return _boto(self.python, code)

    def keys(self, bucket, prefix=""):
        return self.client(f"""
pages = s3.get_paginator("list_objects_v2").paginate(Bucket={bucket!r}, Prefix={prefix!r})
print(json.dumps(sorted(o["Key"] for p in pages for o in p.get("Contents", []))))
""")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()
