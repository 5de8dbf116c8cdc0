"""End-to-end tests of examples/mnist: train, evaluate, serve (CPU, bundled digits).

The scripts run as subprocesses exactly as the pipeline runs them. evaluate.py and
serve.py run with torch, scikit-learn (serve) and PyYAML (serve) made unimportable, which
proves the serving image needs numpy only. Nothing is skipped: missing dependencies fail.
"""
from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mnist"
SCRIPT_TIMEOUT = 300
HTTP_TIMEOUT = 10
METRIC_KEYS = {"metric", "value", "threshold", "passed", "n_test"}

pytestmark = pytest.mark.slow

try:
    import numpy as np
    import yaml
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
except ImportError as exc:  # a failure, not a skip: the example's tests must run in CI
    raise ImportError(f"{exc}: install the example's pins with "
                      f"`.venv/bin/pip install -r {EXAMPLE / 'requirements.txt'}`") from exc


def blocked(*modules: str) -> list[str]:
    """python -c prefix running a script with `modules` unimportable."""
    code = ("import importlib.abc, runpy, sys\n"
            "class Block(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            f"        if name.split('.')[0] in {list(modules)!r}:\n"
            "            raise ImportError(f'{name} is blocked by the test')\n"
            "sys.meta_path.insert(0, Block())\n"
            "script = sys.argv[1]\n"
            "sys.argv = sys.argv[1:]\n"
            "sys.path.insert(0, str(__import__('pathlib').Path(script).parent))\n"
            "runpy.run_path(script, run_name='__main__')\n")
    return [sys.executable, "-c", code]


def run_script(script: str, *args: str, block: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    command = (blocked(*block) if block else [sys.executable]) + [str(EXAMPLE / script), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT,
                          cwd=EXAMPLE, check=False)


def train(params: Path, data_dir: Path, model_dir: Path) -> subprocess.CompletedProcess:
    result = run_script("train.py", "--params", params, "--data-dir", data_dir,
                        "--model-dir", model_dir, "--device", "cpu")
    assert result.returncode == 0, f"train.py failed:\n{result.stdout}\n{result.stderr}"
    return result


def evaluate(params: Path, data_dir: Path, model_dir: Path, metrics: Path,
             *extra: str) -> subprocess.CompletedProcess:
    return run_script("evaluate.py", "--params", params, "--data-dir", data_dir,
                      "--model-dir", model_dir, "--metrics-out", metrics, *extra,
                      block=("torch",))


def write_params(path: Path, **changes) -> Path:
    params = yaml.safe_load((EXAMPLE / "params.yaml").read_text())
    params.update(changes)
    path.write_text(yaml.safe_dump(params))
    return path


def load_arrays(model_dir: Path) -> dict[str, np.ndarray]:
    with np.load(model_dir / "model.npz") as archive:
        return {key: archive[key] for key in archive.files}


def digits_test_split(seed: int, test_size: float) -> tuple[np.ndarray, np.ndarray]:
    digits = load_digits()
    _unused, X_test, _unused, y_test = train_test_split(digits.data, digits.target, test_size=test_size,
                                                        random_state=seed, stratify=digits.target)
    return X_test, y_test


@pytest.fixture(scope="module")
def params() -> dict:
    return yaml.safe_load((EXAMPLE / "params.yaml").read_text())


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """The example trained with its own params.yaml on the bundled digits."""
    root = tmp_path_factory.mktemp("digits")
    data_dir, model_dir = root / "data", root / "model"
    data_dir.mkdir()
    result = train(EXAMPLE / "params.yaml", data_dir, model_dir)
    return data_dir, model_dir, result


def test_torch_is_installed():
    try:
        import torch
    except ImportError as exc:
        pytest.fail(f"PyTorch is required by the example tests ({exc}): "
                    f".venv/bin/pip install -r {EXAMPLE / 'requirements.txt'}")
    assert torch.__version__.startswith("2.13.0")


def test_train_writes_model_and_logs_epochs(digits_model, params):
    _unused, model_dir, result = digits_model
    epochs = params["epochs"]
    assert "device: cpu" in result.stdout
    for epoch in (1, epochs):
        assert re.search(rf"^epoch {epoch}/{epochs} loss \d+\.\d{{4}} train_accuracy \d\.\d{{4}}$",
                         result.stdout, re.MULTILINE), result.stdout
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["framework"] == "pytorch"
    assert meta["input_shape"] == [64]
    assert meta["n_features"] == 64
    assert meta["classes"] == list(range(10))
    assert meta["layer_sizes"] == [64, *params["hidden_sizes"], 10]
    assert meta["data"]["kind"] == "sklearn-digits"
    arrays = load_arrays(model_dir)
    assert arrays["W0"].shape == (params["hidden_sizes"][0], 64)
    assert arrays["classes"].tolist() == list(range(10))


def test_evaluate_passes_params_threshold(digits_model, params, tmp_path):
    data_dir, model_dir, _unused = digits_model
    metrics_file = tmp_path / "out" / "metrics.json"
    result = evaluate(EXAMPLE / "params.yaml", data_dir, model_dir, metrics_file)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(metrics_file.read_text())
    assert set(metrics) == METRIC_KEYS
    assert metrics["metric"] == "accuracy"
    assert metrics["threshold"] == params["threshold"]
    assert metrics["value"] >= params["threshold"]
    assert metrics["passed"] is True
    assert metrics["n_test"] == 360  # 20 % of the 1797 digits


@pytest.mark.parametrize("threshold", ["1.01", "0.9999"])
def test_evaluate_impossible_threshold_exits_1(digits_model, tmp_path, threshold):
    data_dir, model_dir, _unused = digits_model
    metrics_file = tmp_path / "metrics.json"
    result = evaluate(EXAMPLE / "params.yaml", data_dir, model_dir, metrics_file,
                      "--threshold", threshold)
    assert result.returncode == 1, result.stdout + result.stderr
    expected = f"below threshold {float(threshold):.4f}"
    assert re.fullmatch(rf"accuracy 0\.\d{{4}} {re.escape(expected)}\n", result.stderr), result.stderr
    metrics = json.loads(metrics_file.read_text())
    assert metrics["passed"] is False and metrics["threshold"] == float(threshold)


def test_evaluate_takes_threshold_from_params(digits_model, tmp_path):
    data_dir, model_dir, _unused = digits_model
    strict = write_params(tmp_path / "params.yaml", threshold=1.01)
    result = evaluate(strict, data_dir, model_dir, tmp_path / "metrics.json")
    assert result.returncode == 1
    assert result.stderr.endswith("below threshold 1.0100\n")


def test_evaluate_reports_missing_model(tmp_path):
    result = evaluate(EXAMPLE / "params.yaml", tmp_path, tmp_path / "nomodel", tmp_path / "m.json")
    assert result.returncode == 2
    assert "model.json not found" in result.stderr
    assert not (tmp_path / "m.json").exists()


def test_training_is_deterministic_for_a_seed(tmp_path):
    quick = {"epochs": 3}
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        params = write_params(tmp_path / f"params-{name}.yaml", seed=seed, **quick)
        train(params, tmp_path / "nodata", tmp_path / name)
        runs[name] = load_arrays(tmp_path / name)
    assert runs["a"].keys() == runs["c"].keys()
    for key in runs["a"]:
        np.testing.assert_array_equal(runs["a"][key], runs["b"][key], err_msg=key)
    assert not np.array_equal(runs["a"]["W0"], runs["c"]["W0"]), "seed has no effect"


def synthetic_npz(path: Path, labels=(1, 4, 7), seed=0) -> Path:
    """Three well separated Gaussian blobs as 4x5 'images' with non-contiguous labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, size=(len(labels), 20))

    def draw(n):
        y = np.repeat(np.array(labels), n)
        X = centres[np.repeat(np.arange(len(labels)), n)] + rng.normal(0, 1, size=(y.size, 20))
        return X.reshape(-1, 4, 5).astype(np.float32), y.astype(np.int64)

    X_train, y_train = draw(100)
    X_test, y_test = draw(30)
    np.savez(path, X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test)
    return path


def test_data_npz_is_used_instead_of_digits(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    npz = synthetic_npz(data_dir / "data.npz")
    params = write_params(tmp_path / "params.yaml", dataset="mnist", epochs=5)
    result = train(params, data_dir, tmp_path / "model")
    assert "data: data.npz train 300 test 90 features 20 classes [1, 4, 7]" in result.stdout
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    assert meta["input_shape"] == [4, 5]
    assert meta["classes"] == [1, 4, 7]
    assert meta["data"] == {"kind": "data.npz",
                            "sha256": __import__("hashlib").sha256(npz.read_bytes()).hexdigest()}
    metrics_file = tmp_path / "metrics.json"
    evaluated = evaluate(params, data_dir, tmp_path / "model", metrics_file)
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(metrics_file.read_text())
    assert metrics["n_test"] == 90 and metrics["value"] >= 0.9


def test_evaluate_rejects_model_trained_on_other_data(digits_model, tmp_path):
    _unused, model_dir, _unused = digits_model
    synthetic_npz(tmp_path / "data.npz")
    result = evaluate(EXAMPLE / "params.yaml", tmp_path, model_dir, tmp_path / "m.json")
    assert result.returncode == 2
    assert "test data has 20 features but the model" in result.stderr


@pytest.mark.parametrize(("case", "message"), [
    ("missing_key", "lacks array(s) y_test"),
    ("mnist_without_file", "params dataset is 'mnist' but"),
    ("bad_param", "epochs must be an integer >= 1, got 0"),
    ("unknown_param", "unknown key(s) epoch"),
])
def test_train_reports_bad_input(tmp_path, case, message):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    params = EXAMPLE / "params.yaml"
    if case == "missing_key":
        np.savez(data_dir / "data.npz", X_train=np.zeros((4, 3)), y_train=np.arange(4),
                 X_test=np.zeros((2, 3)))
    elif case == "mnist_without_file":
        params = write_params(tmp_path / "p.yaml", dataset="mnist")
    elif case == "bad_param":
        params = write_params(tmp_path / "p.yaml", epochs=0)
    else:
        params = write_params(tmp_path / "p.yaml", epoch=3)
    result = run_script("train.py", "--params", params, "--data-dir", data_dir,
                        "--model-dir", tmp_path / "model")
    assert result.returncode == 2
    assert result.stderr.startswith("train.py: error: ") and message in result.stderr, result.stderr
    assert not (tmp_path / "model").exists()


# ------------------------------------------------------------------------- serving

@pytest.fixture(scope="module")
def server(digits_model):
    """serve.py on 127.0.0.1, a free port, with torch/sklearn/yaml unimportable."""
    _unused, model_dir, _unused = digits_model
    command = blocked("torch", "sklearn", "yaml") + [
        str(EXAMPLE / "serve.py"), "--model-dir", str(model_dir), "--host", "127.0.0.1",
        "--port", "0"]
    env = {**os.environ, "MODEL_VERSION": "test-1.2.3"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=EXAMPLE)
    try:
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=60):
            pytest.fail("serve.py printed no address within 60 s")
        line = proc.stdout.readline()
        match = re.search(r"on http://127\.0\.0\.1:(\d+)$", line.strip())
        if not match:
            proc.kill()
            pytest.fail(f"serve.py did not start: {line!r} {proc.communicate(timeout=10)}")
        yield f"http://127.0.0.1:{match.group(1)}", proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


def request(url: str, body: bytes | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def test_serve_healthz(server):
    base, _unused = server
    assert request(f"{base}/healthz") == (200, {"status": "ok", "model_version": "test-1.2.3"})


def test_serve_predicts_test_samples(server, params):
    base, _unused = server
    X_test, y_test = digits_test_split(params["seed"], params["test_size"])
    X, y = X_test[:20], y_test[:20]
    status, body = request(f"{base}/predict", json.dumps({"instances": X.tolist()}).encode())
    assert status == 200, body
    predictions = body["predictions"]
    assert len(predictions) == 20 and all(isinstance(p, int) for p in predictions)
    assert np.mean(np.array(predictions) == y) >= 0.85, (predictions, y.tolist())
    # the same samples as 8x8 images give the same answer
    status, nested = request(f"{base}/predict",
                             json.dumps({"instances": X.reshape(-1, 8, 8).tolist()}).encode())
    assert status == 200 and nested["predictions"] == predictions


@pytest.mark.parametrize(("body", "message"), [
    (b"not json", "not valid JSON"),
    (b'{"inputs": [[1]]}', 'key "instances"'),
    (b'{"instances": []}', "non-empty list"),
    (b'{"instances": [[1, 2, 3]]}', "has 3 values; the model expects 64"),
    (json.dumps({"instances": [["a"] * 64]}).encode(), "only numbers"),
    (json.dumps({"instances": [[1] * 63 + [[1]]]}).encode(), "not a rectangular array"),
    (json.dumps({"instances": [[True] * 64]}).encode(), "only numbers"),
])
def test_serve_rejects_bad_input(server, body, message):
    base, _unused = server
    status, payload = request(f"{base}/predict", body)
    assert status == 400
    assert message in payload["error"]


def test_serve_unknown_route(server):
    base, _unused = server
    status, payload = request(f"{base}/nope")
    assert status == 404 and "error" in payload


def test_serve_stops_on_sigterm(server):
    base, proc = server
    assert request(f"{base}/healthz")[0] == 200
    proc.terminate()
    assert proc.wait(timeout=15) == 0
    assert "received SIGTERM" in proc.stderr.read()


def test_serve_without_model_fails_clearly(tmp_path):
    started = time.monotonic()
    result = run_script("serve.py", "--model-dir", tmp_path, "--port", "0",
                        block=("torch", "sklearn", "yaml"))
    assert result.returncode == 2
    assert "model.json not found" in result.stderr
    assert time.monotonic() - started < SCRIPT_TIMEOUT


def test_serve_refuses_tampered_weights(digits_model, tmp_path):
    _unused, model_dir, _unused = digits_model
    copy = tmp_path / "model"
    copy.mkdir()
    (copy / "model.json").write_text((model_dir / "model.json").read_text())
    arrays = load_arrays(model_dir)
    arrays["W0"] = arrays["W0"] * 2
    np.savez(copy / "model.npz", **arrays)
    result = run_script("serve.py", "--model-dir", copy, "--port", "0", block=("torch",))
    assert result.returncode == 2
    assert "does not match weights_sha256" in result.stderr


# ------------------------------------------------------------------------- packaging

def pins(name: str) -> dict[str, str]:
    lines = (EXAMPLE / name).read_text().splitlines()
    result = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            package, sep, version = line.partition("==")
            assert sep and version, f"{name}: {line!r} is not pinned with =="
            result[package.lower()] = version
    return result


def test_requirement_pins_agree():
    local = pins("requirements.txt")
    assert local["torch"] == "2.13.0"
    assert {"numpy", "scikit-learn", "pyyaml"} <= set(local)
    image, serve, upload = (pins("requirements-image.txt"), pins("requirements-serve.txt"),
                            pins("requirements-upload.txt"))
    assert "torch" not in image, "the training image must keep its base image's CUDA torch"
    assert serve == {"numpy": local["numpy"]}
    for name, version in {**image, **upload}.items():
        assert local.get(name, version) == version, f"{name} pinned differently"


def test_dockerfile_contract():
    text = (EXAMPLE / "Dockerfile").read_text()
    bases = re.findall(r"^ARG \w+_BASE_IMAGE=(\S+)$", text, re.MULTILINE)
    assert len(bases) == 2
    for base in bases:
        assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", base), base
    stages = re.findall(r"^FROM \S+ AS (\w+)$", text, re.MULTILINE)
    assert stages == ["serve", "train"], "the default (last) stage must be the CI image `train`"
    train_stage = text.split(" AS train", 1)[1]
    copied = set()
    for line in re.findall(r"^COPY (.+) \./$", train_stage, re.MULTILINE):
        copied.update(line.split())
    assert {"train.py", "evaluate.py", "serve.py", "params.yaml", "dataset.py", "mlp.py"} <= copied
    serve_stage = text.split(" AS serve", 1)[1].split(" AS train", 1)[0]
    assert "COPY mlp.py serve.py ./" in serve_stage
    ignored = (EXAMPLE / ".dockerignore").read_text().split()
    for name in copied | {"mlp.py", "serve.py", "requirements-serve.txt", "requirements-image.txt"}:
        assert f"!{name}" in ignored, f"{name} is excluded from the build context"


def test_dockerfile_targets_match_the_pipeline_spec():
    """CI builds spec ci.train_target for ct.architecture only and ci.serve_target for every
    serving architecture: the serving stage must not start from the CUDA image, and both
    stage names must exist."""
    spec = yaml.safe_load((EXAMPLE / "pipeline.yml").read_text())
    text = (EXAMPLE / "Dockerfile").read_text()
    stages = dict((name, base) for base, name in re.findall(r"^FROM (\S+) AS (\w+)$", text, re.MULTILINE))
    assert set(stages) == {spec["ci"]["train_target"], spec["ci"]["serve_target"]}
    bases = dict(re.findall(r"^ARG (\w+_BASE_IMAGE)=(\S+)$", text, re.MULTILINE))
    serve_base = bases[stages[spec["ci"]["serve_target"]].strip("${}")]
    train_base = bases[stages[spec["ci"]["train_target"]].strip("${}")]
    assert "cuda" in train_base and "cuda" not in serve_base and serve_base.startswith("python:")
    assert spec["ct"]["architecture"] == "amd64"
    assert set(spec["ci"]["serving_architectures"]) == {"amd64", "arm64"}
    serve_stage = text.split(" AS serve", 1)[1].split(" AS train", 1)[0]
    assert re.search(r"^USER [0-9]+:[0-9]+$", serve_stage, re.MULTILINE)


@pytest.mark.parametrize("override, passes", [("", True), ("0.9999", False)])
def test_pipeline_gate_runs_the_real_evaluate_script(digits_model, tmp_path, override, passes):
    """The CT gate the pipeline runs in the model image (plugins/module_utils/pipeline/
    scripts/gate.py) with this example's evaluate.py: lineage only when the gate passes."""
    from ansible_collections.researchops.mlops.plugins.module_utils.pipeline.ct import GATE_SCRIPT

    data_dir, model_dir, _model = digits_model
    work = tmp_path / "work"
    work.mkdir()
    (work / "data").symlink_to(data_dir, target_is_directory=True)
    (work / "model").symlink_to(model_dir, target_is_directory=True)
    gate = tmp_path / "gate.py"
    gate.write_text(GATE_SCRIPT)
    env = dict(os.environ, WORK_DIR=str(work), EVALUATE=str(EXAMPLE / "evaluate.py"),
               PARAMS_FILE=str(EXAMPLE / "params.yaml"), METRIC="accuracy", SPEC_THRESHOLD="0.5",
               THRESHOLD_OVERRIDE=override, PIPELINE="mnist", VERSION="v1", MODEL_URI="s3://models/mnist/v1",
               CODE_SHA="a" * 40, GIT_REF="refs/tags/v1", REPO_URL="https://github.com/lab/mnist.git",
               DATASET="mnist", DATA_VERSION="v1", IMAGE="harbor/mlops/mnist:" + "a" * 40,
               WORKFLOW_NAME="mnist-ct-x", WORKFLOW_UID="u", WORKFLOW_NAMESPACE="mlops-pipelines",
               CREATED_AT="2026-01-01T00:00:00Z")
    result = subprocess.run([sys.executable, str(gate)], cwd=EXAMPLE, env=env, capture_output=True, text=True,
                            timeout=600, check=False)
    assert (result.returncode == 0) is passes, result.stderr
    lineage = work / "lineage.json"
    assert lineage.exists() is passes
    if passes:
        assert json.loads(lineage.read_text())["metrics"]["passed"] is True
    else:
        assert "below threshold" in result.stderr
