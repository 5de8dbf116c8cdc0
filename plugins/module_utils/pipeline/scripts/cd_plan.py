# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""CD plan, run by the plan step in the Python image (Argo `script` template) with no
credentials: checks a model version's lineage and writes the merge patch the next step
applies to the Argo CD Application with `kubectl patch` (registry.k8s.io/kubectl has no
shell, so no logic can run next to the CD ServiceAccount's token).

Writes to $OUTPUTS: `patch` (the patch document, every '$' doubled because the kubelet
expands $(VAR) in the patch step's args) and `jsonpath` (the `kubectl wait --for`
condition: the version annotation on the Deployment's pod template).
Every input comes from the environment; nothing is spliced into code."""

import json
import os
import sys


def fail(message):
    sys.stderr.write(message + "\n")
    raise SystemExit(1)


def main(env):
    requested = env["MODEL_VERSION"]
    try:
        lineage = json.loads(env["LINEAGE"])
    except ValueError as err:
        fail(f"lineage of {requested} is not JSON: {err}")
    if not isinstance(lineage, dict):
        fail(f"lineage of {requested} is not a JSON object")
    code_sha, version = lineage.get("code_sha"), lineage.get("model_version")
    if not isinstance(code_sha, str) or not code_sha:
        fail(f"lineage of {requested} has no code_sha: refusing to deploy")
    if version != requested:
        fail(f"lineage of {requested} names model version {version}: refusing to deploy")
    if (lineage.get("metrics") or {}).get("passed") is not True:
        fail(f"lineage of model version {version} does not record a passed gate: refusing to deploy")
    # The serving image: the multi-arch manifest list CI built from the same commit.
    image = f"{env['SERVE_REPOSITORY']}:{code_sha}"
    patch = {"spec": {
        "source": {"targetRevision": code_sha, "kustomize": {
            "images": [f"{env['MODEL_PLACEHOLDER']}={image}", f"{env['TOOLS_PLACEHOLDER']}={env['TOOLS_IMAGE']}"],
            "replicas": [{"name": env["DEPLOYMENT"], "count": int(env["REPLICAS"])}],
            "commonAnnotations": {env["VERSION_ANNOTATION"]: version}}},
        "syncPolicy": {"automated": {"prune": True, "selfHeal": True}}}}
    outputs = env["OUTPUTS"]
    os.makedirs(outputs, exist_ok=True)
    with open(os.path.join(outputs, "patch"), "w", encoding="utf-8") as out:
        out.write(json.dumps(patch, sort_keys=True, separators=(",", ":")).replace("$", "$$"))
    sys.stdout.write(f"Application {env['APPLICATION']}: model version {version}, image {image}, manifests at {code_sha}\n")


if __name__ == "__main__":
    main(os.environ)
