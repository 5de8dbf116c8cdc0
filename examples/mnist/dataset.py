"""Parameters and data loading shared by train.py and evaluate.py.

Data comes from ``<data-dir>/data.npz`` (arrays X_train, y_train, X_test, y_test; the
pipeline downloads it from s3://datasets/<name>/<version>/) when that file exists, and
otherwise from scikit-learn's bundled 8x8 digits, split deterministically with the
``seed`` and ``test_size`` parameters. Only numpy, PyYAML and (for digits) scikit-learn
are needed here: no deep-learning framework.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DATA_FILE = "data.npz"
DATA_KEYS = ("X_train", "y_train", "X_test", "y_test")
DATASETS = ("digits", "mnist")

# name -> (accepted python types, check, description)
_PARAM_RULES: dict[str, tuple[tuple[type, ...], Any, str]] = {
    "dataset": ((str,), lambda v: v in DATASETS, f"one of {', '.join(DATASETS)}"),
    "epochs": ((int,), lambda v: v >= 1, "an integer >= 1"),
    "batch_size": ((int,), lambda v: v >= 1, "an integer >= 1"),
    "lr": ((int, float), lambda v: 0 < v < math.inf, "a number > 0"),
    "weight_decay": ((int, float), lambda v: 0 <= v < math.inf, "a number >= 0"),
    "hidden_sizes": (
        (list,),
        lambda v: all(isinstance(i, int) and not isinstance(i, bool) and i >= 1 for i in v),
        "a list of integers >= 1 (may be empty)",
    ),
    "seed": ((int,), lambda v: 0 <= v < 2**32, "an integer in [0, 2**32)"),
    "test_size": ((float,), lambda v: 0 < v < 1, "a number strictly between 0 and 1"),
    "threshold": ((int, float), math.isfinite, "a finite number (accuracy, e.g. 0.9)"),
}
_OPTIONAL_DEFAULTS: dict[str, Any] = {"weight_decay": 0.0, "test_size": 0.2}


class DataError(Exception):
    """Bad parameters or data; the scripts print it and exit with code 2."""


@dataclass
class Split:
    """A train/test split plus where it came from (recorded in model.json)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    input_shape: list[int]
    source: dict[str, Any]


def load_params(path: str | Path) -> dict[str, Any]:
    """Read and validate params.yaml; unknown keys are rejected to catch typos."""
    import yaml  # only the training/evaluation side needs PyYAML

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"cannot read params file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise DataError(f"params file {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise DataError(f"params file {path} must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(_PARAM_RULES))
    if unknown:
        raise DataError(f"params file {path}: unknown key(s) {', '.join(unknown)}; "
                        f"known: {', '.join(sorted(_PARAM_RULES))}")
    params = {**_OPTIONAL_DEFAULTS, **raw}
    missing = sorted(set(_PARAM_RULES) - set(params))
    if missing:
        raise DataError(f"params file {path}: missing key(s) {', '.join(missing)}")
    for name, (types, check, wanted) in _PARAM_RULES.items():
        value = params[name]
        if isinstance(value, int) and float in types and not isinstance(value, bool):
            value = params[name] = float(value)
        if isinstance(value, bool) or not isinstance(value, types) or not check(value):
            raise DataError(f"params file {path}: {name} must be {wanted}, got {value!r}")
    return params


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _as_features(name: str, array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim < 2 or array.shape[0] == 0:
        raise DataError(f"{path}: {name} must have shape (n_samples, ...features) with "
                        f"n_samples > 0, got {array.shape}")
    if array.dtype.kind not in "biuf":
        raise DataError(f"{path}: {name} must be numeric, got dtype {array.dtype}")
    features = array.reshape(array.shape[0], -1).astype(np.float32)
    if not np.isfinite(features).all():
        raise DataError(f"{path}: {name} contains NaN or infinite values")
    return features


def _as_labels(name: str, array: np.ndarray, n_samples: int, path: Path) -> np.ndarray:
    if array.ndim != 1 or array.shape[0] != n_samples:
        raise DataError(f"{path}: {name} must have shape ({n_samples},) to match the "
                        f"samples, got {array.shape}")
    if array.dtype.kind not in "iu":
        raise DataError(f"{path}: {name} must hold integer class labels, got dtype {array.dtype}")
    return array.astype(np.int64)


def _load_npz(path: Path) -> Split:
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in DATA_KEYS if key not in archive.files]
            if missing:
                raise DataError(f"{path} lacks array(s) {', '.join(missing)}; expected "
                                f"{', '.join(DATA_KEYS)} (see upload_dataset.py)")
            arrays = {key: archive[key] for key in DATA_KEYS}
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path} as a numpy .npz archive: {exc}") from exc
    if arrays["X_train"].shape[1:] != arrays["X_test"].shape[1:]:
        raise DataError(f"{path}: X_train samples have shape {arrays['X_train'].shape[1:]} but "
                        f"X_test samples {arrays['X_test'].shape[1:]}")
    X_train = _as_features("X_train", arrays["X_train"], path)
    X_test = _as_features("X_test", arrays["X_test"], path)
    y_train = _as_labels("y_train", arrays["y_train"], X_train.shape[0], path)
    y_test = _as_labels("y_test", arrays["y_test"], X_test.shape[0], path)
    return Split(X_train, y_train, X_test, y_test,
                 input_shape=[int(d) for d in arrays["X_train"].shape[1:]],
                 source={"kind": "data.npz", "sha256": sha256_file(path)})


def _load_digits(seed: int, test_size: float) -> Split:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(
        digits.data.astype(np.float32), digits.target.astype(np.int64),
        test_size=test_size, random_state=seed, stratify=digits.target)
    return Split(X_train, y_train, X_test, y_test, input_shape=[int(digits.data.shape[1])],
                 source={"kind": "sklearn-digits", "seed": seed, "test_size": test_size})


def load_split(data_dir: str | Path, params: dict[str, Any]) -> Split:
    """The train/test split for these params: data.npz when present, else digits."""
    data_dir = Path(data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise DataError(f"--data-dir {data_dir} is not a directory")
    npz = data_dir / DATA_FILE
    if npz.is_file():
        return _load_npz(npz)
    if params["dataset"] != "digits":
        raise DataError(f"params dataset is {params['dataset']!r} but {npz} does not exist; "
                        "put the dataset there (the pipeline downloads it from object "
                        "storage, upload_dataset.py creates it) or set dataset: digits")
    return _load_digits(params["seed"], params["test_size"])
