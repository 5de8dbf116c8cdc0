"""The shell/Python step scripts of the generated workflows, run for real on this machine
(paths under /work moved to a temporary folder): checkout resolves revisions and model
versions, the CT gate fails below the threshold and writes lineage above it."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ansible_collections.researchops.mlops.plugins.module_utils.pipeline.ci import CHECKOUT_SCRIPT
from ansible_collections.researchops.mlops.plugins.module_utils.pipeline.ct import GATE_SCRIPT

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture()
def origin(tmp_path):
    repo = tmp_path / "origin"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "ci@example.org")
    _git(repo, "config", "user.name", "ci")
    (repo / "Dockerfile").write_text("FROM scratch\n")
    (repo / "params.yaml").write_text("threshold: 0.9\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    _git(repo, "tag", "v1.2.0")
    (repo / "README").write_text("second\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "second")
    _git(repo, "config", "uploadpack.allowAnySHA1InWant", "true")
    return repo


def _checkout(tmp_path, origin, revision, ref="", required="/work/src/Dockerfile"):
    work = tmp_path / "work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    script = CHECKOUT_SCRIPT.replace("/work/", f"{work}/")
    env = dict(os.environ, REPO_URL=f"file://{origin}", REVISION=revision, REF=ref,
               OUTPUTS=str(tmp_path / "out"), REQUIRED_FILES=required.replace("/work/", f"{work}/"),
               HOME=str(tmp_path), GIT_CONFIG_NOSYSTEM="1")
    result = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, check=False)
    outputs = {}
    if result.returncode == 0:
        for name in ("commit-sha", "git-ref", "version"):
            outputs[name] = (tmp_path / "out" / name).read_text()
    return result, outputs


def test_checkout_commit_sha_gives_short_sha_version(tmp_path, origin):
    head = _git(origin, "rev-parse", "HEAD")
    result, out = _checkout(tmp_path, origin, head, "refs/heads/main")
    assert result.returncode == 0, result.stderr
    assert out == {"commit-sha": head, "git-ref": "refs/heads/main", "version": head[:7]}


def test_checkout_tag_push_gives_tag_version(tmp_path, origin):
    tagged = _git(origin, "rev-parse", "v1.2.0^{commit}")
    result, out = _checkout(tmp_path, origin, tagged, "refs/tags/v1.2.0")
    assert result.returncode == 0, result.stderr
    assert out == {"commit-sha": tagged, "git-ref": "refs/tags/v1.2.0", "version": "v1.2.0"}


def test_checkout_manual_rerun_by_tag_name(tmp_path, origin):
    tagged = _git(origin, "rev-parse", "v1.2.0^{commit}")
    result, out = _checkout(tmp_path, origin, "v1.2.0")
    assert result.returncode == 0, result.stderr
    assert out == {"commit-sha": tagged, "git-ref": "refs/tags/v1.2.0", "version": "v1.2.0"}


def test_checkout_unknown_revision_fails_clearly(tmp_path, origin):
    result, _extra = _checkout(tmp_path, origin, "no-such-branch")
    assert result.returncode != 0
    assert "revision 'no-such-branch' not found" in result.stderr


def test_checkout_missing_required_file_fails(tmp_path, origin):
    result, _extra = _checkout(tmp_path, origin, "main", required="/work/src/deploy/params.yaml")
    assert result.returncode != 0
    assert "deploy/params.yaml is missing" in result.stderr


POD_UID = 65532  # pipeline/security.py NONROOT_UID: the uid every checkout container runs as


def _can_switch_users():
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("setpriv") and shutil.which("ssh")):
        return False
    try:
        pwd.getpwuid(POD_UID)
    except KeyError:
        return subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False).returncode == 0
    return False  # this machine knows the uid: the image's situation cannot be reproduced


@pytest.mark.skipif(not _can_switch_users(), reason="needs root, unshare, setpriv, ssh and no passwd entry for 65532")
def test_checkout_gives_ssh_a_user_for_the_pods_uid(origin):
    """The checkout image (kubernetes/git-sync Dockerfile.in at v4.7.1) knows only its own
    uid 65533 in /etc/passwd and leaves that file writable (mode 0666) so that another uid
    can add itself (main.go addUser: "Put the current UID/GID into /etc/passwd so SSH can
    look it up"); OpenSSH's ssh.c exits with "No user exists for uid" otherwise. Here the
    checkout runs as the pods' uid 65532 in a private mount namespace whose /etc/passwd is
    a writable copy lacking that uid, and `ssh -G` must then accept the uid."""
    shared = Path(tempfile.mkdtemp(prefix="checkout-uid-"))
    try:
        shared.chmod(0o755)
        remote = shared / "origin"
        shutil.copytree(origin, remote)
        work, out = shared / "work", shared / "out"
        work.mkdir()
        out.mkdir()
        for path in (work, out, remote, *remote.rglob("*")):
            os.chown(path, POD_UID, POD_UID, follow_symlinks=False)
        passwd = shared / "passwd"
        passwd.write_text(Path("/etc/passwd").read_text())
        passwd.chmod(0o666)
        script = CHECKOUT_SCRIPT.replace("/work/", f"{work}/") + "ssh -G localhost >/dev/null\n"
        env = {"PATH": os.environ["PATH"], "REPO_URL": f"file://{remote}", "REVISION": "main", "REF": "",
               "OUTPUTS": str(out), "REQUIRED_FILES": f"{work}/src/Dockerfile", "HOME": str(work),
               "GIT_CONFIG_NOSYSTEM": "1"}
        inner = 'mount --bind "$1" /etc/passwd && shift && exec "$@"'
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", inner, "sh", str(passwd),
                   "setpriv", f"--reuid={POD_UID}", f"--regid={POD_UID}", "--clear-groups", "sh", "-c", script]
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        assert "No user exists" not in result.stderr
        assert result.returncode == 0, result.stderr
        assert (out / "commit-sha").read_text() == _git(origin, "rev-parse", "HEAD")
        assert f"checkout:x:{POD_UID}:{POD_UID}:" in passwd.read_text()
        assert "checkout:x:" not in Path("/etc/passwd").read_text()
    finally:
        shutil.rmtree(shared)


FAKE_EVALUATE = """
import argparse, json, os, sys
p = argparse.ArgumentParser()
for name in ("--params", "--data-dir", "--model-dir", "--metrics-out", "--threshold"):
    p.add_argument(name)
a = p.parse_args()
value = float(os.environ["FAKE_VALUE"])
t = float(a.threshold)
json.dump({"metric": os.environ.get("FAKE_METRIC", "accuracy"), "value": value, "threshold": t,
           "passed": value >= t}, open(a.metrics_out, "w"))
if os.environ.get("FAKE_NEVER_FAILS") != "1" and value < t:
    print("accuracy %.4f below threshold %.4f" % (value, t), file=sys.stderr)
    sys.exit(1)
"""


def _evaluate(tmp_path, value, params="threshold: 0.9\n", override="", extra=None):
    work = tmp_path / "work"
    (work / "src").mkdir(parents=True, exist_ok=True)
    (work / "src" / "params.yaml").write_text(params)
    fake = tmp_path / "evaluate.py"
    fake.write_text(FAKE_EVALUATE)
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    python = bindir / "python"
    if not python.exists():
        python.symlink_to(sys.executable)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", EVALUATE=str(fake),
               PARAMS_FILE=str(work / "src" / "params.yaml"), METRIC="accuracy", SPEC_THRESHOLD="0.5",
               THRESHOLD_OVERRIDE=override, PIPELINE="mnist", VERSION="v1.2.0",
               MODEL_URI="s3://models/mnist/v1.2.0", CODE_SHA="a" * 40, GIT_REF="refs/tags/v1.2.0",
               REPO_URL="https://github.com/lab/mnist.git", DATASET="mnist", DATA_VERSION="v1",
               IMAGE="harbor/mlops/mnist:" + "a" * 40, WORKFLOW_NAME="mnist-ct-abcde", WORKFLOW_UID="uid-1",
               WORKFLOW_NAMESPACE="mlops-pipelines", CREATED_AT="2026-01-01T00:00:00Z", FAKE_VALUE=str(value))
    env.update(extra or {})
    env["WORK_DIR"] = str(work)
    script = tmp_path / "gate.py"
    script.write_text(GATE_SCRIPT)
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, check=False)
    lineage = work / "lineage.json"
    return result, json.loads(lineage.read_text()) if lineage.exists() else None


def test_gate_below_threshold_fails_with_metric_and_stores_nothing(tmp_path):
    result, lineage = _evaluate(tmp_path, 0.91, params="threshold: 0.95\n")
    assert result.returncode != 0
    assert "accuracy 0.9100 below threshold 0.9500" in result.stderr
    assert lineage is None


def test_gate_rechecks_a_script_that_does_not_fail(tmp_path):
    result, lineage = _evaluate(tmp_path, 0.5, extra={"FAKE_NEVER_FAILS": "1"})
    assert result.returncode != 0
    assert "accuracy 0.5 below threshold 0.9: model not stored, nothing deployed" in result.stderr
    assert lineage is None


def test_gate_wrong_metric_fails(tmp_path):
    result, _extra = _evaluate(tmp_path, 0.99, extra={"FAKE_METRIC": "f1"})
    assert result.returncode != 0
    assert "evaluate reported metric 'f1', the pipeline gates on 'accuracy'" in result.stderr


def test_gate_passes_and_writes_lineage(tmp_path):
    result, lineage = _evaluate(tmp_path, 0.97)
    assert result.returncode == 0, result.stderr
    assert lineage["code_sha"] == "a" * 40
    assert lineage["data_version"] == "v1" and lineage["model_version"] == "v1.2.0"
    assert lineage["metrics"]["value"] == 0.97 and lineage["metrics"]["passed"] is True
    assert lineage["created_by"]["workflow"] == "mnist-ct-abcde"
    assert lineage["image"].endswith(":" + "a" * 40)


@pytest.mark.parametrize("params, override, value, passes", [
    ("threshold: 0.9\n", "", 0.8, False),     # params file wins over the spec (0.5)
    ("epochs: 3\n", "", 0.6, True),           # no threshold in params: spec default 0.5
    ("threshold: 0.9\n", "0.7", 0.8, True),   # -p threshold overrides both
])
def test_threshold_precedence(tmp_path, params, override, value, passes):
    result, _extra = _evaluate(tmp_path, value, params=params, override=override)
    assert (result.returncode == 0) is passes, result.stderr


@pytest.mark.parametrize("params, override", [
    ("threshold: .nan\n", ""), ("threshold: nan\n", ""), ("threshold: .inf\n", ""), ("", "nan"), ("", "abc"),
])
def test_gate_refuses_a_non_finite_threshold(tmp_path, params, override):
    """NaN compares false with everything: `value < nan` would let any model through."""
    result, lineage = _evaluate(tmp_path, 0.1, params=params or "epochs: 1\n", override=override,
                                extra={"FAKE_NEVER_FAILS": "1"})
    assert result.returncode != 0 and lineage is None
    assert "is not a number" in result.stderr or "is not a finite number" in result.stderr


def test_gate_refuses_a_non_finite_metric(tmp_path):
    result, lineage = _evaluate(tmp_path, float("nan"), extra={"FAKE_NEVER_FAILS": "1"})
    assert result.returncode != 0 and lineage is None
    assert "accuracy value nan is not a finite number" in result.stderr


def test_gate_is_a_script_file_free_of_argo_and_kubelet_syntax():
    """Argo substitutes {{...}} in a script template's source and the source travels in an
    environment variable of the pod (kubelet $(VAR) expansion): the gate holds neither."""
    assert "{{" not in GATE_SCRIPT and "$" not in GATE_SCRIPT
    assert "python -c" not in GATE_SCRIPT


def test_checkout_refuses_a_ref_that_is_not_a_plain_name(tmp_path, origin):
    """Git allows '"' in branch names; the ref is spliced into the next stage's Workflow
    manifest, so checkout refuses anything but letters, digits and _ . / -."""
    _git(origin, "branch", 'we"ird')
    head = _git(origin, "rev-parse", "HEAD")
    result, _extra = _checkout(tmp_path, origin, head, 'refs/heads/we"ird')
    assert result.returncode != 0
    assert "is not a plain ref name" in result.stderr
