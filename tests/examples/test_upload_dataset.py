"""Tests of examples/mnist/upload_dataset.py: IDX/npz conversion and the S3 upload logic.

The upload runs against an in-memory stand-in for boto3's S3 client (no network, no
boto3 install needed); the converted data.npz is then read by train.py's data loader.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mnist"


def load_module(name: str):
    if str(EXAMPLE) not in sys.path:
        sys.path.insert(0, str(EXAMPLE))
    spec = importlib.util.spec_from_file_location(f"mnist_example_{name}", EXAMPLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


upload_dataset = load_module("upload_dataset")
dataset = load_module("dataset")


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    magic = 0x00000800 | array.ndim
    raw = struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


@pytest.fixture
def mnist_like():
    rng = np.random.default_rng(3)
    return {
        "X_train": rng.integers(0, 256, size=(12, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, size=12).astype(np.uint8),
        "X_test": rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, size=5).astype(np.uint8),
    }


@pytest.fixture
def idx_dir(tmp_path, mnist_like):
    folder = tmp_path / "idx"
    folder.mkdir()
    for index, (key, stem) in enumerate(upload_dataset.IDX_FILES.items()):
        write_idx(folder / stem, mnist_like[key], compress=index % 2 == 0)
    return folder


def check_converted(path: Path, expected: dict[str, np.ndarray]) -> None:
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == sorted(expected)
        for key, value in expected.items():
            np.testing.assert_array_equal(archive[key], value, err_msg=key)
        assert archive["X_train"].dtype == np.uint8 and archive["y_train"].dtype == np.int64


def test_converts_idx_files_for_train_py(idx_dir, mnist_like, tmp_path):
    out = tmp_path / "data" / "data.npz"
    assert upload_dataset.main(["--source", str(idx_dir), "--output", str(out), "--no-upload"]) == 0
    check_converted(out, mnist_like)
    params = {"dataset": "mnist", "seed": 1, "test_size": 0.2}
    split = dataset.load_split(out.parent, params)
    assert split.X_train.shape == (12, 784) and split.input_shape == [28, 28]
    assert split.source == {"kind": "data.npz", "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}


def test_converts_keras_npz(mnist_like, tmp_path):
    source = tmp_path / "mnist.npz"
    np.savez(source, x_train=mnist_like["X_train"], y_train=mnist_like["y_train"],
             x_test=mnist_like["X_test"], y_test=mnist_like["y_test"])
    out = tmp_path / "data.npz"
    assert upload_dataset.main(["--source", str(source), "--output", str(out), "--no-upload"]) == 0
    check_converted(out, mnist_like)


@pytest.mark.parametrize(("damage", "message"), [
    ("missing", "has neither t10k-labels-idx1-ubyte nor t10k-labels-idx1-ubyte.gz"),
    ("magic", "IDX magic"),
    ("truncated", "bytes follow"),
    ("count", "labels of shape"),
])
def test_rejects_broken_idx(idx_dir, mnist_like, capsys, damage, message):
    labels = idx_dir / "t10k-labels-idx1-ubyte"  # written uncompressed by the fixture
    if damage == "missing":
        labels.unlink()
    elif damage == "magic":
        labels.write_bytes(struct.pack(">II", 0x00000803, 5) + bytes(5))
    elif damage == "truncated":
        labels.write_bytes(labels.read_bytes()[:-1])
    else:
        write_idx(labels, mnist_like["y_test"][:4], compress=False)
    assert upload_dataset.main(["--source", str(idx_dir), "--output", "x.npz", "--no-upload"]) == 2
    assert message in capsys.readouterr().err


class FakeS3:
    """The three S3 client calls upload_dataset.py makes, over a dict."""

    def __init__(self, objects=None):
        self.objects = dict(objects or {})
        self.client_args = None

    def list_objects_v2(self, Bucket, Prefix, MaxKeys):
        keys = [k for (b, k) in self.objects if b == Bucket and k.startswith(Prefix)][:MaxKeys]
        return {"KeyCount": len(keys)}

    def upload_file(self, filename, bucket, key, ExtraArgs):
        self.objects[(bucket, key)] = (Path(filename).read_bytes(), ExtraArgs)

    def put_object(self, Bucket, Key, Body, ContentType):
        self.objects[(Bucket, Key)] = (Body, {"ContentType": ContentType})


@pytest.fixture
def fake_boto3(monkeypatch):
    s3 = FakeS3()

    def client(service, **kwargs):
        assert service == "s3"
        s3.client_args = kwargs
        return s3

    class ClientError(Exception):
        pass

    boto3 = types.ModuleType("boto3")
    boto3.client = client
    boto3_exceptions = types.ModuleType("boto3.exceptions")
    boto3_exceptions.Boto3Error = type("Boto3Error", (Exception,), {})
    botocore = types.ModuleType("botocore")
    botocore_exceptions = types.ModuleType("botocore.exceptions")
    botocore_exceptions.BotoCoreError = type("BotoCoreError", (Exception,), {})
    botocore_exceptions.ClientError = ClientError
    for name, module in (("boto3", boto3), ("boto3.exceptions", boto3_exceptions),
                         ("botocore", botocore), ("botocore.exceptions", botocore_exceptions)):
        monkeypatch.setitem(sys.modules, name, module)
    return s3


def test_uploads_data_and_manifest_under_version(idx_dir, fake_boto3, capsys):
    args = ["--source", str(idx_dir), "--name", "mnist", "--version", "v1",
            "--endpoint-url", "http://s3.local", "--ca-bundle", "/etc/ca.crt"]
    assert upload_dataset.main(args) == 0
    assert fake_boto3.client_args == {"endpoint_url": "http://s3.local", "verify": "/etc/ca.crt"}
    data, extra = fake_boto3.objects[("datasets", "mnist/v1/data.npz")]
    digest = hashlib.sha256(data).hexdigest()
    assert extra["Metadata"] == {"sha256": digest}
    manifest = json.loads(fake_boto3.objects[("datasets", "mnist/v1/manifest.json")][0])
    assert manifest == {"file": "data.npz", "sha256": digest, "n_train": 12, "n_test": 5,
                        "input_shape": [28, 28], "classes": manifest["classes"],
                        "name": "mnist", "version": "v1", "source_format": "idx"}
    assert "uploaded s3://datasets/mnist/v1/data.npz" in capsys.readouterr().out


def test_versions_are_immutable(idx_dir, fake_boto3, capsys):
    fake_boto3.objects[("datasets", "mnist/v1/data.npz")] = (b"old", {})
    assert upload_dataset.main(["--source", str(idx_dir), "--version", "v1"]) == 2
    assert "already exists; dataset versions are immutable" in capsys.readouterr().err
    assert fake_boto3.objects[("datasets", "mnist/v1/data.npz")] == (b"old", {})
    assert upload_dataset.main(["--source", str(idx_dir), "--version", "v1", "--force"]) == 0
    assert fake_boto3.objects[("datasets", "mnist/v1/data.npz")][0] != b"old"


@pytest.mark.parametrize("argv", [
    ["--version", "../v1"],
    ["--version", "v1", "--name", "a/b"],
    [],  # uploading needs a version
    ["--no-upload"],  # converting only needs --output
])
def test_rejects_bad_arguments(idx_dir, argv):
    with pytest.raises(SystemExit) as exc:
        upload_dataset.main(["--source", str(idx_dir), *argv])
    assert exc.value.code == 2
