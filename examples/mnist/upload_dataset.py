#!/usr/bin/env python3
"""Convert MNIST you already have into data.npz and upload it as a dataset version.

    python upload_dataset.py --source PATH --name mnist --version v1 \
        [--bucket datasets] [--endpoint-url URL] [--ca-bundle FILE] [--force]
    python upload_dataset.py --source PATH --output data.npz --no-upload

--source is either a folder with the four original IDX files (train-images-idx3-ubyte,
train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each optionally
.gz) or an .npz holding x_train/y_train/x_test/y_test (keras' mnist.npz) or
X_train/y_train/X_test/y_test. The result is data.npz with uint8 X_train (n, 28, 28),
int64 y_train, X_test, y_test - what train.py and evaluate.py read - plus manifest.json.
Both go to s3://<bucket>/<name>/<version>/. A version is immutable: uploading to an
existing one fails unless --force. Credentials come from the usual AWS variables
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or profile; the endpoint from --endpoint-url
or AWS_ENDPOINT_URL. Exit codes: 0 done, 2 bad input or upload failure.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

IDX_FILES = {
    "X_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "X_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
NPZ_KEYS = {"X_train": ("X_train", "x_train"), "y_train": ("y_train",),
            "X_test": ("X_test", "x_test"), "y_test": ("y_test",)}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# IDX magic numbers: 0x0000 then type 0x08 (unsigned byte) then the number of dimensions.
IDX_MAGIC = {3: 0x00000803, 1: 0x00000801}


class DatasetError(Exception):
    """Bad source files or arguments; printed with exit code 2."""


def read_idx(path: Path, ndim: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path} is too short to be an IDX file")
    magic, *dims = struct.unpack(f">I{ndim}I", raw[:header])
    if magic != IDX_MAGIC[ndim]:
        raise DatasetError(f"{path}: IDX magic {magic:#010x}, expected {IDX_MAGIC[ndim]:#010x} "
                           f"(unsigned bytes, {ndim} dimension(s))")
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DatasetError(f"{path}: header announces {dims} ({expected} bytes) but "
                           f"{len(raw) - header} bytes follow")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def find_idx(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{folder} has neither {stem} nor {stem}.gz")


def load_source(source: Path) -> tuple[dict[str, np.ndarray], str]:
    if source.is_dir():
        arrays = {key: read_idx(find_idx(source, stem), 3 if key.startswith("X") else 1)
                  for key, stem in IDX_FILES.items()}
        return arrays, "idx"
    if source.is_file() and source.suffix == ".npz":
        try:
            with np.load(source, allow_pickle=False) as archive:
                arrays = {}
                for key, names in NPZ_KEYS.items():
                    name = next((n for n in names if n in archive.files), None)
                    if name is None:
                        raise DatasetError(f"{source} lacks {' or '.join(names)}")
                    arrays[key] = archive[name]
        except (OSError, ValueError) as exc:
            raise DatasetError(f"cannot read {source} as .npz: {exc}") from exc
        return arrays, "npz"
    raise DatasetError(f"--source {source} is neither a folder of IDX files nor an .npz file")


def normalise(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check consistency and convert to the data.npz layout."""
    out = {}
    for part in ("train", "test"):
        X, y = arrays[f"X_{part}"], arrays[f"y_{part}"]
        if X.ndim < 2 or y.ndim != 1 or X.shape[0] != y.shape[0] or X.shape[0] == 0:
            raise DatasetError(f"{part}: {X.shape[0] if X.ndim else 0} images of shape "
                               f"{X.shape[1:]} but labels of shape {y.shape}")
        if y.dtype.kind not in "iu":
            raise DatasetError(f"{part}: labels must be integers, got dtype {y.dtype}")
        if X.dtype != np.uint8:
            if X.dtype.kind not in "iuf" or X.min() < 0 or X.max() > 255:
                raise DatasetError(f"{part}: images must be pixel values 0..255, got dtype "
                                   f"{X.dtype}")
            X = np.rint(X).astype(np.uint8)
        out[f"X_{part}"], out[f"y_{part}"] = np.ascontiguousarray(X), y.astype(np.int64)
    if out["X_train"].shape[1:] != out["X_test"].shape[1:]:
        raise DatasetError(f"train images {out['X_train'].shape[1:]} and test images "
                           f"{out['X_test'].shape[1:]} differ in shape")
    return out


def write_npz(arrays: dict[str, np.ndarray], output: Path) -> dict[str, Any]:
    output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(output, **arrays)
    digest = hashlib.sha256(output.read_bytes()).hexdigest()
    return {
        "file": "data.npz",
        "sha256": digest,
        "n_train": int(arrays["X_train"].shape[0]),
        "n_test": int(arrays["X_test"].shape[0]),
        "input_shape": [int(d) for d in arrays["X_train"].shape[1:]],
        "classes": sorted(int(c) for c in np.unique(arrays["y_train"])),
    }


def upload(data_file: Path, manifest: dict[str, Any], args: argparse.Namespace) -> str:
    """Put data.npz then manifest.json under s3://bucket/name/version/; returns the URL."""
    try:  # only this upload step needs boto3 (requirements-upload.txt)
        import boto3
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError as exc:
        raise DatasetError("boto3 is needed to upload: pip install -r requirements-upload.txt "
                           "(or use --no-upload)") from exc
    client_args: dict[str, Any] = {}
    if args.endpoint_url:
        client_args["endpoint_url"] = args.endpoint_url
    if args.region:
        client_args["region_name"] = args.region
    if args.ca_bundle:
        client_args["verify"] = args.ca_bundle
    prefix = f"{args.name}/{args.version}/"
    try:
        client = boto3.client("s3", **client_args)
        existing = client.list_objects_v2(Bucket=args.bucket, Prefix=prefix, MaxKeys=1)
        if existing.get("KeyCount", 0) and not args.force:
            raise DatasetError(f"s3://{args.bucket}/{prefix} already exists; dataset versions "
                               "are immutable - choose a new --version (or --force to replace it)")
        client.upload_file(str(data_file), args.bucket, prefix + "data.npz",
                           ExtraArgs={"ContentType": "application/octet-stream",
                                      "Metadata": {"sha256": manifest["sha256"]}})
        client.put_object(Bucket=args.bucket, Key=prefix + "manifest.json",
                          Body=(json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode(),
                          ContentType="application/json")
    except (Boto3Error, BotoCoreError, ClientError) as exc:
        raise DatasetError(f"upload to s3://{args.bucket}/{prefix} failed: {exc}") from exc
    return f"s3://{args.bucket}/{prefix}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, type=Path,
                        help="folder with the 4 MNIST IDX files (.gz or not) or an .npz")
    parser.add_argument("--name", default="mnist", help="dataset name (default: mnist)")
    parser.add_argument("--version", help="dataset version, e.g. v1 or 2024-06-01 (required "
                                          "unless --no-upload)")
    parser.add_argument("--bucket", default="datasets", help="bucket (default: datasets)")
    parser.add_argument("--endpoint-url", help="S3 endpoint (default: AWS_ENDPOINT_URL or AWS)")
    parser.add_argument("--region", help="S3 region (default: from the AWS configuration)")
    parser.add_argument("--ca-bundle", help="CA certificate file for an HTTPS endpoint "
                                            "signed by the platform CA")
    parser.add_argument("--output", type=Path,
                        help="also keep data.npz here (default: a temporary file)")
    parser.add_argument("--no-upload", action="store_true",
                        help="only convert (needs --output)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing version (breaks reproducibility)")
    args = parser.parse_args(argv)
    if args.no_upload and args.output is None:
        parser.error("--no-upload needs --output")
    if not args.no_upload and not args.version:
        parser.error("--version is required to upload")
    for option in ("name", "version"):
        value = getattr(args, option)
        if value is not None and not NAME_RE.match(value):
            parser.error(f"--{option} {value!r}: use letters, digits, '.', '_' and '-' only")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    arrays, source_format = load_source(args.source)
    arrays = normalise(arrays)
    with tempfile.TemporaryDirectory() as tmp:
        data_file = args.output or Path(tmp) / "data.npz"
        manifest = write_npz(arrays, data_file)
        manifest.update({"name": args.name, "version": args.version,
                         "source_format": source_format})
        print(f"wrote {data_file}: {manifest['n_train']} train / {manifest['n_test']} test "
              f"images {manifest['input_shape']}, sha256 {manifest['sha256']}")
        if not args.no_upload:
            url = upload(data_file, manifest, args)
            print(f"uploaded {url}data.npz and {url}manifest.json")
    return manifest


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except (DatasetError, OSError) as exc:
        print(f"upload_dataset.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
