# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""CT gate, run by the evaluate step inside the model image (Argo `script` template).

1. Threshold: -p threshold=<x> on the workflow (THRESHOLD_OVERRIDE), else the params
   file's `threshold`, else the spec's ct.threshold (SPEC_THRESHOLD); it must be a finite
   number.
2. Runs the repository's evaluate script, which exits non-zero with
   "<metric> <value> below threshold <x>" when the gate fails.
3. Repeats the comparison on the metrics file it wrote, so that a script that forgets to
   fail cannot deploy, and writes lineage.json for the store step.
Every input comes from the environment; nothing is spliced into code."""

import json
import math
import os
import subprocess
import sys


def fail(message):
    sys.stderr.write(message + "\n")
    raise SystemExit(1)


def finite(text, what):
    try:
        value = float(text)
    except (TypeError, ValueError):
        fail(f"{what} {text!r} is not a number")
    if not math.isfinite(value):
        fail(f"{what} {text!r} is not a finite number")
    return value


def threshold(env):
    if env.get("THRESHOLD_OVERRIDE"):
        return env["THRESHOLD_OVERRIDE"], "-p threshold"
    import yaml  # the model image has PyYAML: the training scripts read the same file

    with open(env["PARAMS_FILE"], encoding="utf-8") as handle:
        params = yaml.safe_load(handle) or {}
    if isinstance(params, dict) and "threshold" in params:
        return str(params["threshold"]), f"threshold of {env['PARAMS_FILE']}"
    return env["SPEC_THRESHOLD"], "ct.threshold of the pipeline spec"


def main(env):
    work = env.get("WORK_DIR", "/work")
    text, source = threshold(env)
    limit = finite(text, source)
    metrics_file = os.path.join(work, "metrics.json")
    command = [sys.executable, env["EVALUATE"], "--params", env["PARAMS_FILE"],
               "--data-dir", os.path.join(work, "data"), "--model-dir", os.path.join(work, "model"),
               "--metrics-out", metrics_file, "--threshold", repr(limit)]
    code = subprocess.call(command, env=dict(env, THRESHOLD=repr(limit)))
    if code != 0:
        raise SystemExit(code)
    with open(metrics_file, encoding="utf-8") as handle:
        metrics = json.load(handle)
    metric = env["METRIC"]
    if not isinstance(metrics, dict) or metrics.get("metric") != metric:
        fail("evaluate reported metric {!r}, the pipeline gates on {!r}".format(metrics.get("metric") if isinstance(metrics, dict) else None, metric))
    value = finite(metrics.get("value"), f"{metric} value")
    if value < limit or metrics.get("passed") is False:
        fail(f"{metric} {value} below threshold {limit}: model not stored, nothing deployed")
    lineage = {
        "pipeline": env["PIPELINE"],
        "model_version": env["VERSION"],
        "model_uri": env["MODEL_URI"],
        "code_sha": env["CODE_SHA"],
        "git_ref": env["GIT_REF"],
        "repo_url": env["REPO_URL"],
        "dataset": env["DATASET"],
        "data_version": env["DATA_VERSION"],
        "image": env["IMAGE"],
        "metrics": dict(metrics, threshold=limit, passed=True),
        "created_by": {"workflow": env["WORKFLOW_NAME"], "uid": env["WORKFLOW_UID"],
                       "namespace": env["WORKFLOW_NAMESPACE"]},
        "created_at": env["CREATED_AT"],
    }
    with open(os.path.join(work, "lineage.json"), "w", encoding="utf-8") as handle:
        json.dump(lineage, handle, indent=2, sort_keys=True)
    sys.stdout.write("{} {} >= threshold {}: gate passed for model version {}\n".format(metric, value, limit, env["VERSION"]))


if __name__ == "__main__":
    main(dict(os.environ))
