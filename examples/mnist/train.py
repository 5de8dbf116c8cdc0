#!/usr/bin/env python3
"""Train the example MLP classifier with PyTorch and export it for numpy serving.

    python train.py --params params.yaml --data-dir DIR --model-dir DIR [--device auto]

Data: DIR/data.npz (X_train, y_train, X_test, y_test) when present, else scikit-learn's
bundled digits. Trains on CUDA when torch.cuda.is_available() (or --device cuda), on the
CPU otherwise; runs are deterministic for a given seed on a given device. Writes
model.npz + model.json (see mlp.py) to the model dir. Exit codes: 0 trained, 2 bad
arguments, parameters, data or environment.
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

import dataset
import mlp
import numpy as np


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, help="params.yaml")
    parser.add_argument("--data-dir", required=True,
                        help="folder that may hold data.npz (else: bundled digits)")
    parser.add_argument("--model-dir", required=True, help="output folder for the model")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: cuda when available, else cpu (default: auto)")
    return parser.parse_args(argv)


def import_torch() -> Any:
    # cuBLAS reads this when CUDA initialises; needed for deterministic matrix products.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    try:
        import torch
    except ImportError as exc:
        raise dataset.DataError(
            "PyTorch is required for training: use the training image or "
            "`pip install -r requirements.txt` (pins torch)") from exc
    return torch


def select_device(torch: Any, requested: str) -> Any:
    if requested == "cuda" and not torch.cuda.is_available():
        raise dataset.DataError("--device cuda requested but torch.cuda.is_available() is "
                                "false (no GPU, driver or CUDA build of torch)")
    if requested == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def seed_everything(torch: Any, seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device too
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


def build_model(torch: Any, n_features: int, hidden_sizes: list[int], n_classes: int) -> Any:
    layers: list[Any] = []
    width = n_features
    for size in hidden_sizes:
        layers += [torch.nn.Linear(width, size), torch.nn.ReLU()]
        width = size
    layers.append(torch.nn.Linear(width, n_classes))
    return torch.nn.Sequential(*layers)


def standardisation(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    # Constant features (MNIST border pixels) would divide by zero: leave them unscaled.
    std[std < 1e-6] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def train(args: argparse.Namespace) -> dict[str, Any]:
    params = dataset.load_params(args.params)
    split = dataset.load_split(args.data_dir, params)
    torch = import_torch()
    device = select_device(torch, args.device)
    seed_everything(torch, params["seed"])

    classes = np.unique(split.y_train)
    unseen = sorted(set(np.unique(split.y_test).tolist()) - set(classes.tolist()))
    if unseen:
        raise dataset.DataError(f"test labels {unseen} never occur in y_train")
    if classes.shape[0] < 2:
        raise dataset.DataError(f"y_train holds a single class {classes.tolist()}: nothing to learn")
    x_mean, x_std = standardisation(split.X_train)
    X = torch.from_numpy((split.X_train - x_mean) / x_std).to(device)
    y = torch.from_numpy(np.searchsorted(classes, split.y_train)).to(device)
    n_samples, n_features = X.shape

    print(f"data: {split.source['kind']} train {n_samples} test {split.X_test.shape[0]} "
          f"features {n_features} classes {classes.tolist()}", flush=True)
    print(f"device: {device}" + (f" ({torch.cuda.get_device_name(device)})"
                                 if device.type == "cuda" else ""), flush=True)

    model = build_model(torch, n_features, params["hidden_sizes"], classes.shape[0]).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=params["lr"],
                                 weight_decay=params["weight_decay"])
    loss_fn = torch.nn.CrossEntropyLoss()
    shuffler = torch.Generator().manual_seed(params["seed"])
    batch_size, epochs = params["batch_size"], params["epochs"]
    started = time.monotonic()
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n_samples, generator=shuffler).to(device)
        total_loss, correct = 0.0, 0
        for start in range(0, n_samples, batch_size):
            batch = order[start:start + batch_size]
            optimiser.zero_grad()
            logits = model(X[batch])
            loss = loss_fn(logits, y[batch])
            loss.backward()
            optimiser.step()
            total_loss += loss.item() * batch.shape[0]
            correct += int((logits.argmax(dim=1) == y[batch]).sum().item())
        print(f"epoch {epoch}/{epochs} loss {total_loss / n_samples:.4f} "
              f"train_accuracy {correct / n_samples:.4f}", flush=True)

    linears = [layer for layer in model if isinstance(layer, torch.nn.Linear)]
    layers = [(layer.weight.detach().cpu().numpy(), layer.bias.detach().cpu().numpy())
              for layer in linears]
    meta = mlp.save(args.model_dir, x_mean, x_std, layers, classes, {
        "framework": "pytorch",
        "framework_version": torch.__version__,
        "python_version": platform.python_version(),
        "trained_on": device.type,
        "input_shape": split.input_shape,
        "activation": "relu",
        "data": split.source,
        "params": params,
        "final_train_loss": round(total_loss / n_samples, 6),
        "final_train_accuracy": round(correct / n_samples, 6),
    })
    print(f"trained {epochs} epochs in {time.monotonic() - started:.1f}s; model written to "
          f"{Path(args.model_dir) / mlp.WEIGHTS_FILE} (sha256 {meta['weights_sha256'][:12]})",
          flush=True)
    return meta


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        train(args)
    except (dataset.DataError, OSError) as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
