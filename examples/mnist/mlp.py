"""Framework-free MLP: the exported model format and its numpy forward pass.

train.py trains with PyTorch and exports the weights here; evaluate.py and serve.py
load them with numpy only, so the quality gate scores exactly what gets served and the
serving image needs no deep-learning framework (small, multi-arch, runs on arm64).

Model directory layout:
  model.npz   float32 arrays x_mean, x_std (input standardisation), W0, b0, W1, b1, ...
              (W<i> has shape (out, in), as torch.nn.Linear.weight) and int64 classes
  model.json  metadata: format, framework, input_shape, n_features, classes, layer
              sizes, training parameters, data source and the sha256 of model.npz
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "researchops-mlp-npz/v1"
WEIGHTS_FILE = "model.npz"
META_FILE = "model.json"


class ModelError(Exception):
    """The model directory is missing, incomplete or inconsistent."""


@dataclass
class MLP:
    x_mean: np.ndarray
    x_std: np.ndarray
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    classes: np.ndarray
    meta: dict[str, Any]

    @property
    def n_features(self) -> int:
        return int(self.x_mean.shape[0])

    def logits(self, X: np.ndarray) -> np.ndarray:
        hidden = (np.asarray(X, dtype=np.float32) - self.x_mean) / self.x_std
        last = len(self.weights) - 1
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            hidden = hidden @ weight.T + bias
            if index < last:
                hidden = np.maximum(hidden, 0.0)
        return hidden

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class labels for a (n_samples, n_features) array."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected shape (n, {self.n_features}), got {X.shape}")
        return self.classes[np.argmax(self.logits(X), axis=1)]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save(model_dir: str | Path, x_mean: np.ndarray, x_std: np.ndarray,
         layers: list[tuple[np.ndarray, np.ndarray]], classes: np.ndarray,
         meta: dict[str, Any]) -> dict[str, Any]:
    """Write model.npz and model.json; returns the metadata written."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {
        "x_mean": np.asarray(x_mean, dtype=np.float32),
        "x_std": np.asarray(x_std, dtype=np.float32),
        "classes": np.asarray(classes, dtype=np.int64),
    }
    for index, (weight, bias) in enumerate(layers):
        arrays[f"W{index}"] = np.asarray(weight, dtype=np.float32)
        arrays[f"b{index}"] = np.asarray(bias, dtype=np.float32)
    weights_path = model_dir / WEIGHTS_FILE
    np.savez(weights_path, **arrays)
    meta = {
        **meta,
        "format": FORMAT,
        "weights_file": WEIGHTS_FILE,
        "weights_sha256": sha256_bytes(weights_path.read_bytes()),
        "n_features": int(arrays["x_mean"].shape[0]),
        "classes": [int(c) for c in arrays["classes"]],
        "layer_sizes": [int(arrays["W0"].shape[1])] + [int(w.shape[0]) for w, _unused in layers],
    }
    (model_dir / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n",
                                       encoding="utf-8")
    return meta


def load(model_dir: str | Path) -> MLP:
    """Load and check a model directory written by save()."""
    model_dir = Path(model_dir)
    meta_path, weights_path = model_dir / META_FILE, model_dir / WEIGHTS_FILE
    for path in (meta_path, weights_path):
        if not path.is_file():
            raise ModelError(f"{path} not found: --model-dir must hold the output of train.py")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelError(f"{meta_path} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ModelError(f"{meta_path}: unsupported model format {found!r}, expected {FORMAT!r}")
    raw = weights_path.read_bytes()
    if sha256_bytes(raw) != meta.get("weights_sha256"):
        raise ModelError(f"{weights_path} does not match weights_sha256 in {meta_path}: "
                         "the model directory is corrupt or mixed from two trainings")
    with np.load(weights_path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    n_layers = sum(1 for key in arrays if key.startswith("W"))
    try:
        weights = [arrays[f"W{i}"] for i in range(n_layers)]
        biases = [arrays[f"b{i}"] for i in range(n_layers)]
        model = MLP(arrays["x_mean"], arrays["x_std"], weights, biases, arrays["classes"], meta)
    except KeyError as exc:
        raise ModelError(f"{weights_path} lacks array {exc.args[0]}") from exc
    width = model.n_features
    for index, (weight, bias) in enumerate(zip(weights, biases)):
        if weight.ndim != 2 or weight.shape[1] != width or bias.shape != (weight.shape[0],):
            raise ModelError(f"{weights_path}: layer {index} shapes {weight.shape}/{bias.shape} "
                             f"do not chain from width {width}")
        width = weight.shape[0]
    if n_layers == 0 or width != model.classes.shape[0]:
        raise ModelError(f"{weights_path}: output width {width} does not match "
                         f"{model.classes.shape[0]} classes")
    return model
