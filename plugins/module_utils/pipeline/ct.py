# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""CT stage: WorkflowTemplate <name>-ct. Checkout -> fetch the dataset version from S3 ->
train (on a GPU node when ct.gpu.count > 0, else on the CPU) -> evaluate and gate on the metric -> store model, metrics and
lineage under s3://<models bucket>/<name>/<model version>/."""

from __future__ import annotations

from pathlib import Path

from .ci import WORKSPACE, checkout_template, kubelet_literal, repo_file, workspace_claim
from .events import chain_parameter, chain_step, next_stage_template
from .security import container_security, pod_security

ARCH_LABEL = "kubernetes.io/arch"

GPU_LABEL = "nvidia.com/gpu.present"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_RUNTIME_CLASS = "nvidia"

S3_PREAMBLE = r"""set -eu
export HOME=/tmp
aws configure set default.s3.addressing_style path
s3() { aws --endpoint-url "$S3_ENDPOINT" s3 "$@"; }
"""

FETCH_SCRIPT = S3_PREAMBLE + r"""SRC="s3://$BUCKET/$DATASET/$DATA_VERSION/"
mkdir -p /work/data
s3 sync --only-show-errors "$SRC" /work/data/
COUNT=$(find /work/data -type f | wc -l)
if [ "$COUNT" -eq 0 ]; then
  echo "dataset $DATASET version $DATA_VERSION is missing or empty: no objects under $SRC" >&2
  exit 1
fi
echo "fetched $COUNT file(s) of dataset $DATASET version $DATA_VERSION from $SRC"
"""

# The gate is a real script file (scripts/gate.py beside this module), run by the evaluate
# step as an Argo `script` template in the model image.
GATE_SCRIPT = (Path(__file__).resolve().parent / "scripts" / "gate.py").read_text(encoding="utf-8")

STORE_SCRIPT = S3_PREAMBLE + r"""DEST="$MODEL_URI"
s3 sync --only-show-errors --delete /work/model/ "$DEST/model/"
s3 cp --only-show-errors /work/metrics.json "$DEST/metrics.json"
# lineage.json last: its presence marks a complete model version for CD.
s3 cp --only-show-errors /work/lineage.json "$DEST/lineage.json"
echo "stored model version $VERSION at $DEST/"
"""


def s3_env(pipeline):
    return [
        {"name": "S3_ENDPOINT", "value": pipeline.platform["s3_endpoint"]},
        {"name": "AWS_DEFAULT_REGION", "value": pipeline.platform["s3_region"]},
    ]


def s3_env_from(pipeline):
    return [{"secretRef": {"name": pipeline.platform["s3_credentials_secret"]}}]


def _harden(template):
    """Restricted container securityContext on every container of the template list."""
    for item in template["spec"]["templates"]:
        for key in ("container", "script"):
            if key in item:
                item[key].setdefault("securityContext", container_security())
    return template


def _gpu(template, gpus):
    """GPU placement of the training step and its tolerations (only when it takes GPUs)."""
    if gpus:
        template["spec"]["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
        train = next(t for t in template["spec"]["templates"] if t["name"] == "train")
        train["podSpecPatch"] = '{"runtimeClassName": "%s"}' % GPU_RUNTIME_CLASS
    return template


def ct_workflow_template(pipeline):
    return _harden(_gpu(_ct_workflow_template(pipeline), pipeline.spec["ct"]["gpu"]["count"]))


def _ct_workflow_template(pipeline):
    spec = pipeline.spec
    ct = spec["ct"]
    platform = pipeline.platform
    params_file = "/work/src/" + repo_file(pipeline, spec["repo"]["params_file"])
    image = f"{pipeline.image_repository}:{{{{inputs.parameters.commit-sha}}}}"
    model_uri = f"{pipeline.models_prefix}/{{{{inputs.parameters.version}}}}"
    checkout_args = [
        {"name": "revision", "value": "{{workflow.parameters.revision}}"},
        {"name": "ref", "value": "{{workflow.parameters.ref}}"},
    ]

    def from_checkout(*names):
        return {"parameters": [
            {"name": name, "value": f"{{{{steps.checkout.outputs.parameters.{name}}}}}"} for name in names]}

    user_env = [{"name": item["name"], "value": kubelet_literal(item["value"])} for item in ct["env"]]
    user_env.append({"name": "HOME", "value": "/tmp"})
    gpus = ct["gpu"]["count"]
    # Every step stays on nodes of ct.architecture (the training image is built for it
    # only) and, with GPUs, on GPU nodes: the workspace volume is node-local
    # (ReadWriteOnce), so the training step must find it where the others wrote it.
    node_terms = [{"key": ARCH_LABEL, "operator": "In", "values": [ct["architecture"]]}]
    if gpus:
        node_terms.append({"key": GPU_LABEL, "operator": "In", "values": ["true"]})
    train_resources = {"requests": {"cpu": ct["resources"]["cpu"], "memory": ct["resources"]["memory"]},
                       "limits": {"memory": ct["resources"]["memory"]}}
    if gpus:
        train_resources["limits"][GPU_RESOURCE] = str(gpus)
    mounts = [{"name": "workspace", "mountPath": WORKSPACE}]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": pipeline.meta(pipeline.template("ct"), "ct"),
        "spec": {
            "entrypoint": "ct",
            "serviceAccountName": pipeline.sa("ct"),
            "activeDeadlineSeconds": ct["timeout"],
            "workflowMetadata": {"labels": pipeline.labels("ct")},
            "arguments": {"parameters": [
                {"name": "revision", "description": "Commit SHA or git tag to train (its image must have been built by CI)."},
                {"name": "ref", "value": "", "description": "Full git ref; set by the CI -> CT sensor, empty for manual runs."},
                {"name": "data-version", "value": ct["dataset"]["version"],
                 "description": f"Version of dataset {ct['dataset']['name']} to train on."},
                {"name": "threshold", "value": "",
                 "description": "Gate threshold override; empty: the params file's threshold, else the spec's."},
                chain_parameter(),
            ]},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": node_terms}]}}},
            "securityContext": pod_security(),
            "imagePullSecrets": [{"name": platform["registry_push_secret"]}],
            "volumeClaimTemplates": [workspace_claim(ct["workspace_size"])],
            "templates": [
                {"name": "ct", "steps": [
                    [{"name": "checkout", "template": "checkout", "arguments": {"parameters": checkout_args}}],
                    [{"name": "fetch-data", "template": "fetch-data"}],
                    [{"name": "train", "template": "train", "arguments": from_checkout("commit-sha")}],
                    [{"name": "evaluate", "template": "evaluate",
                      "arguments": from_checkout("commit-sha", "git-ref", "version")}],
                    [{"name": "store", "template": "store", "arguments": from_checkout("version")}],
                    chain_step("cd", [("model-version", "{{steps.checkout.outputs.parameters.version}}")]),
                ]},
                next_stage_template(pipeline, "cd", ["model-version"]),
                checkout_template(pipeline, "checkout", [params_file],
                                  {"commit-sha": "commit-sha", "git-ref": "git-ref", "version": "model-version"}),
                {
                    "name": "fetch-data",
                    "container": {
                        "name": "main",
                        "image": pipeline.images["awscli"],
                        "command": ["/bin/sh", "-c", FETCH_SCRIPT],
                        "env": s3_env(pipeline) + [
                            {"name": "BUCKET", "value": platform["datasets_bucket"]},
                            {"name": "DATASET", "value": ct["dataset"]["name"]},
                            {"name": "DATA_VERSION", "value": "{{workflow.parameters.data-version}}"},
                        ],
                        "envFrom": s3_env_from(pipeline),
                        "volumeMounts": mounts,
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                    },
                },
                {
                    "name": "train",
                    "inputs": {"parameters": [{"name": "commit-sha"}]},
                    "container": {
                        "name": "main",
                        "image": image,
                        "command": ["python", ct["train_script"], "--params", params_file,
                                    "--data-dir", "/work/data", "--model-dir", "/work/model"],
                        "env": user_env,
                        "volumeMounts": mounts,
                        "resources": train_resources,
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                    },
                },
                {
                    "name": "evaluate",
                    "inputs": {"parameters": [{"name": "commit-sha"}, {"name": "git-ref"}, {"name": "version"}]},
                    "outputs": {"parameters": [
                        {"name": "metrics", "globalName": "metrics", "valueFrom": {"path": "/work/metrics.json"}}]},
                    "script": {
                        "name": "main",
                        "image": image,
                        "command": ["python"],
                        "source": GATE_SCRIPT,
                        "env": user_env + [
                            {"name": "EVALUATE", "value": ct["evaluate_script"]},
                            {"name": "PARAMS_FILE", "value": params_file},
                            {"name": "METRIC", "value": ct["metric"]},
                            {"name": "SPEC_THRESHOLD", "value": str(ct["threshold"])},
                            {"name": "THRESHOLD_OVERRIDE", "value": "{{workflow.parameters.threshold}}"},
                            {"name": "PIPELINE", "value": pipeline.name},
                            {"name": "VERSION", "value": "{{inputs.parameters.version}}"},
                            {"name": "MODEL_URI", "value": model_uri},
                            {"name": "CODE_SHA", "value": "{{inputs.parameters.commit-sha}}"},
                            {"name": "GIT_REF", "value": "{{inputs.parameters.git-ref}}"},
                            {"name": "REPO_URL", "value": spec["repo"]["url"]},
                            {"name": "DATASET", "value": ct["dataset"]["name"]},
                            {"name": "DATA_VERSION", "value": "{{workflow.parameters.data-version}}"},
                            {"name": "IMAGE", "value": image},
                            {"name": "WORKFLOW_NAME", "value": "{{workflow.name}}"},
                            {"name": "WORKFLOW_UID", "value": "{{workflow.uid}}"},
                            {"name": "WORKFLOW_NAMESPACE", "value": "{{workflow.namespace}}"},
                            {"name": "CREATED_AT", "value": "{{workflow.creationTimestamp}}"},
                        ],
                        "volumeMounts": mounts,
                        "resources": {"requests": {"cpu": ct["resources"]["cpu"], "memory": ct["resources"]["memory"]},
                                      "limits": {"memory": ct["resources"]["memory"]}},
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                    },
                },
                {
                    "name": "store",
                    "inputs": {"parameters": [{"name": "version"}]},
                    "outputs": {"parameters": [
                        {"name": "model-uri", "globalName": "model-uri", "value": model_uri}]},
                    "container": {
                        "name": "main",
                        "image": pipeline.images["awscli"],
                        "command": ["/bin/sh", "-c", STORE_SCRIPT],
                        "env": s3_env(pipeline) + [
                            {"name": "MODEL_URI", "value": model_uri},
                            {"name": "VERSION", "value": "{{inputs.parameters.version}}"},
                        ],
                        "envFrom": s3_env_from(pipeline),
                        "volumeMounts": mounts,
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                    },
                },
            ],
        },
    }
