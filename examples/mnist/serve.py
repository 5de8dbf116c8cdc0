#!/usr/bin/env python3
"""Serve the exported model over HTTP with the standard library and numpy only.

    python serve.py --model-dir DIR [--host 0.0.0.0] [--port 8080]

GET  /healthz  -> 200 {"status": "ok", "model_version": ...}
POST /predict  {"instances": [[f1, f2, ...], ...]} -> 200 {"predictions": [label, ...],
               "model_version": ...}; an instance may also be nested (e.g. 8x8 or 28x28)
               as long as it holds n_features numbers. Bad input -> 400 {"error": ...}.

The model version is $MODEL_VERSION when set (the CD pipeline sets the image/model
tag), else "sha256:<first 12 hex digits of model.npz>". --port 0 picks a free port; the
first line on stdout names the address. SIGTERM/SIGINT stop the server cleanly.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import mlp
import numpy as np

MAX_BODY_BYTES = 16 * 1024 * 1024


class BadRequest(Exception):
    """Client error reported as 400 with a JSON body."""


def parse_instances(body: bytes, n_features: int, max_batch: int) -> np.ndarray:
    """Validate a /predict body and return a (n, n_features) float32 array."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict) or "instances" not in payload:
        raise BadRequest('body must be a JSON object with key "instances"')
    instances = payload["instances"]
    if not isinstance(instances, list) or not instances:
        raise BadRequest('"instances" must be a non-empty list of feature lists')
    if len(instances) > max_batch:
        raise BadRequest(f'"instances" holds {len(instances)} items; at most {max_batch} per request')
    rows = []
    for index, instance in enumerate(instances):
        try:
            row = np.asarray(instance)
        except ValueError as exc:  # ragged nesting
            raise BadRequest(f"instance {index} is not a rectangular array of numbers") from exc
        if row.dtype.kind not in "iuf":
            raise BadRequest(f"instance {index} must contain only numbers")
        if row.size != n_features:
            raise BadRequest(f"instance {index} has {row.size} values; the model expects {n_features}")
        row = row.astype(np.float32).reshape(-1)
        if not np.isfinite(row).all():
            raise BadRequest(f"instance {index} contains a non-finite number")
        rows.append(row)
    return np.stack(rows)


class ModelServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], model: mlp.MLP, version: str, max_batch: int):
        super().__init__(address, Handler)
        self.model = model
        self.model_version = version
        self.max_batch = max_batch


class Handler(BaseHTTPRequestHandler):
    server: ModelServer
    server_version = "researchops-mlp-serve/1"
    protocol_version = "HTTP/1.1"

    def send_json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/healthz":
            self.send_json(HTTPStatus.OK, {"status": "ok", "model_version": self.server.model_version})
        elif self.path.split("?", 1)[0] == "/predict":
            self.send_json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use POST for /predict"})
        else:
            self.send_json(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/predict":
            self.send_json(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})
            return
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self.close_connection = True
            self.send_json(HTTPStatus.LENGTH_REQUIRED, {"error": "a Content-Length header is required"})
            return
        length = int(length_header)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self.send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           {"error": f"body of {length} bytes exceeds {MAX_BODY_BYTES}"})
            return
        body = self.rfile.read(length)
        try:
            X = parse_instances(body, self.server.model.n_features, self.server.max_batch)
        except BadRequest as exc:
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
            return
        predictions = self.server.model.predict(X)
        self.send_json(HTTPStatus.OK, {"predictions": [int(p) for p in predictions],
                                       "model_version": self.server.model_version})

    def log_message(self, fmt: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} {fmt % args}\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="output folder of train.py")
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (default: 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8080, help="port (default: 8080; 0: any free)")
    parser.add_argument("--max-batch", type=int, default=1024,
                        help="most instances per /predict request (default: 1024)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        model = mlp.load(args.model_dir)
    except (mlp.ModelError, OSError, ValueError) as exc:
        print(f"serve.py: error: {exc}", file=sys.stderr)
        return 2
    version = os.environ.get("MODEL_VERSION") or f"sha256:{model.meta['weights_sha256'][:12]}"
    try:
        server = ModelServer((args.host, args.port), model, version, args.max_batch)
    except OSError as exc:
        print(f"serve.py: error: cannot listen on {args.host}:{args.port}: {exc.strerror}",
              file=sys.stderr)
        return 2

    def stop(signum: int, _frame: Any) -> None:
        print(f"received {signal.Signals(signum).name}, shutting down", file=sys.stderr, flush=True)
        # shutdown() waits for serve_forever() to return: call it off the main thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    print(f"serving model {version} ({model.n_features} features, classes "
          f"{model.classes.tolist()}) on http://{host}:{port}", flush=True)
    with server:
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
