#!/usr/bin/env python3
"""Score the exported model on the test split and apply the accuracy gate.

    python evaluate.py --params params.yaml --data-dir DIR --model-dir DIR \
        --metrics-out FILE [--threshold X]

The model is loaded with numpy (mlp.py), exactly as serve.py serves it; no PyTorch
needed. Writes {"metric": "accuracy", "value": v, "threshold": t, "passed": bool,
"n_test": n} to FILE in every outcome where the model could be scored. Exit codes:
0 passed, 1 accuracy below the threshold (one line "accuracy 0.9123 below threshold
0.9500" on stderr), 2 bad arguments, parameters, data or model.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import dataset
import mlp
import numpy as np


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite: {text!r}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True, help="params.yaml")
    parser.add_argument("--data-dir", required=True,
                        help="folder that may hold data.npz (else: bundled digits)")
    parser.add_argument("--model-dir", required=True, help="output folder of train.py")
    parser.add_argument("--metrics-out", required=True, help="JSON file to write")
    parser.add_argument("--threshold", type=finite_float,
                        help="minimum accuracy (default: threshold in params.yaml)")
    return parser.parse_args(argv)


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    params = dataset.load_params(args.params)
    threshold = params["threshold"] if args.threshold is None else args.threshold
    model = mlp.load(args.model_dir)
    split = dataset.load_split(args.data_dir, params)
    if split.X_test.shape[1] != model.n_features:
        raise dataset.DataError(
            f"test data has {split.X_test.shape[1]} features but the model in "
            f"{args.model_dir} expects {model.n_features}: was it trained on other data?")
    predictions = model.predict(split.X_test)
    accuracy = float(np.mean(predictions == split.y_test))
    metrics = {
        "metric": "accuracy",
        "value": accuracy,
        "threshold": float(threshold),
        "passed": accuracy >= threshold,
        "n_test": int(split.y_test.shape[0]),
    }
    out = Path(args.metrics_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        metrics = evaluate(args)
    except (dataset.DataError, mlp.ModelError, OSError) as exc:
        print(f"evaluate.py: error: {exc}", file=sys.stderr)
        return 2
    if not metrics["passed"]:
        print(f"accuracy {metrics['value']:.4f} below threshold {metrics['threshold']:.4f}",
              file=sys.stderr)
        return 1
    print(f"accuracy {metrics['value']:.4f} >= threshold {metrics['threshold']:.4f} "
          f"on {metrics['n_test']} test samples: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
