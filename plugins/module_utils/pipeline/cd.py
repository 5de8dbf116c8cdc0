# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""CD stage: the Argo CD Application <name>-serving (source: the model repo's deploy/
kustomization) and WorkflowTemplate <name>-cd, which reads a model version's lineage,
points the Application at it, waits for the roll-out and sends a smoke request."""

from __future__ import annotations

import json
from pathlib import Path

from .ci import kubelet_literal
from .ct import GPU_LABEL, s3_env_from
from .security import container_security, pod_security

# Placeholder image names used by the serving manifests in the model repo; the CD step
# replaces them through the Application's kustomize `images`.
MODEL_IMAGE_PLACEHOLDER = "model"
TOOLS_IMAGE_PLACEHOLDER = "s3-tools"
FETCH_MODEL_CONTAINER = "fetch-model"

LINEAGE_SCRIPT = r"""set -eu
export HOME=/tmp
aws configure set default.s3.addressing_style path
mkdir -p /tmp/outputs
SRC="$MODELS_PREFIX/$MODEL_VERSION/lineage.json"
if ! aws --endpoint-url "$S3_ENDPOINT" s3 cp --only-show-errors "$SRC" /tmp/outputs/lineage.json; then
  echo "model version $MODEL_VERSION has no lineage at $SRC: it was never stored (did CT run and pass its gate for it?)" >&2
  exit 1
fi
cat /tmp/outputs/lineage.json
"""

# Plan and smoke run as Python scripts (files beside this module, Argo `script` templates)
# in the Docker Official Python image, without credentials. The steps holding the CD
# ServiceAccount's token run registry.k8s.io/kubectl (the Kubernetes project's image:
# kubectl only, no shell), so they are plain kubectl arguments.
SCRIPTS = Path(__file__).resolve().parent / "scripts"
PLAN_SCRIPT = (SCRIPTS / "cd_plan.py").read_text(encoding="utf-8")
SMOKE_SCRIPT = (SCRIPTS / "smoke.py").read_text(encoding="utf-8")
KUBECTL = "/bin/kubectl"  # ENTRYPOINT of kubernetes/kubernetes build/server-image/kubectl/Dockerfile
VERSION_ANNOTATION = "researchops.io/model-version"
OUTPUTS = "/tmp/outputs"
# The smoke request: retries of a refused/failed request, seconds between them, seconds
# per attempt.
SMOKE_RETRIES, SMOKE_RETRY_DELAY, SMOKE_MAX_TIME = 5, 3, 30


def version_jsonpath():
    """JSONPath of the version annotation on the Deployment's pod template ('.' in the
    key escaped, as kubectl's JSONPath wants it)."""
    return "{.spec.template.metadata.annotations." + VERSION_ANNOTATION.replace(".", "\\.") + "}"


# Worst case of one CD run, in seconds, besides its kubectl waits (each up to
# rollout_timeout: the Deployment's creation by Argo CD's first sync, the version
# annotation on its pod template, `kubectl rollout status`): the smoke request (5 retries
# of at most 30 s + 3 s apart), the lineage read, plan and patch, and five pod start-ups.
CD_OVERHEAD = 300
CD_WAITS = 3


def cd_deadline(rollout_timeout):
    """activeDeadlineSeconds of a CD Workflow: its own worst case, plus as long again for
    the one CD of the same pipeline it may wait for behind the mutex."""
    return 2 * (CD_WAITS * rollout_timeout + CD_OVERHEAD)


NOT_SYNCED_SCRIPT = """import os, sys
e = os.environ
sys.exit(f"Argo CD did not sync model version {e['MODEL_VERSION']} to deployment/{e['DEPLOYMENT']} within "
         f"{e['TIMEOUT']}s; see: kubectl -n {e['ARGOCD_NAMESPACE']} get application {e['APPLICATION']} -o yaml")
"""


def kubectl_template(pipeline, name, args, inputs=()):
    """A step holding the CD ServiceAccount's token: kubectl with these arguments, nothing
    else (the image has no shell)."""
    template = {
        "name": name,
        "container": {
            "name": "main",
            "image": pipeline.images["kubectl"],
            "command": [KUBECTL],
            "args": args,
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "securityContext": container_security(),
        },
    }
    if inputs:
        template["inputs"] = {"parameters": [{"name": item} for item in inputs]}
    return template


def python_template(pipeline, name, source, env, outputs=(), inputs=()):
    """A step without credentials of its own: a Python script in the Python image."""
    template = {
        "name": name,
        "script": {
            "name": "main",
            "image": pipeline.images["python"],
            "command": ["python3"],
            "source": source,
            "env": env,
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "securityContext": container_security(),
        },
    }
    if inputs:
        template["inputs"] = {"parameters": [{"name": item} for item in inputs]}
    if outputs:
        template["outputs"] = {"parameters": [{"name": item, "valueFrom": {"path": f"{OUTPUTS}/{item}"}}
                                              for item in outputs]}
    return template


def cd_workflow_template(pipeline):
    spec = pipeline.spec
    cd = spec["cd"]
    platform = pipeline.platform
    version = "{{workflow.parameters.model-version}}"
    version_env = {"name": "MODEL_VERSION", "value": version}
    timeout = f"--timeout={cd['rollout_timeout']}s"
    deployment = f"deployment/{pipeline.deployment}"
    in_namespace = ["-n", pipeline.namespace]
    where = [
        {"name": "ARGOCD_NAMESPACE", "value": platform["argocd_namespace"]},
        {"name": "APPLICATION", "value": pipeline.application},
        {"name": "DEPLOYMENT", "value": pipeline.deployment},
    ]
    url = f"http://{pipeline.service}.{pipeline.namespace}.svc.cluster.local:{cd['port']}{cd['smoke']['path']}"
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": pipeline.meta(pipeline.template("cd"), "cd"),
        "spec": {
            "entrypoint": "cd",
            "serviceAccountName": pipeline.sa("cd"),
            "activeDeadlineSeconds": cd_deadline(cd["rollout_timeout"]),
            "securityContext": pod_security(),
            # One CD per pipeline at a time: two model versions of one commit (a branch
            # push and a tag push) never patch the Application concurrently.
            "synchronization": {"mutexes": [{"name": f"{pipeline.name}-cd"}]},
            "workflowMetadata": {"labels": pipeline.labels("cd")},
            "arguments": {"parameters": [
                {"name": "model-version", "description": "Model version to deploy (git tag or short commit SHA); must have passed CT."},
            ]},
            "templates": [
                {"name": "cd", "steps": [
                    [{"name": "lineage", "template": "lineage"}],
                    [{"name": "plan", "template": "plan", "arguments": {"parameters": [
                        {"name": "lineage", "value": "{{steps.lineage.outputs.parameters.lineage}}"}]}}],
                    [{"name": "patch", "template": "patch", "arguments": {"parameters": [
                        {"name": "patch", "value": "{{steps.plan.outputs.parameters.patch}}"}]}}],
                    [{"name": "sync", "template": "sync"}],
                    [{"name": "rollout", "template": "rollout"}],
                    [{"name": "smoke", "template": "smoke"}],
                ]},
                {
                    "name": "lineage",
                    "outputs": {"parameters": [
                        {"name": "lineage", "globalName": "lineage", "valueFrom": {"path": "/tmp/outputs/lineage.json"}}]},
                    "container": {
                        "name": "main",
                        "image": pipeline.images["awscli"],
                        "command": ["/bin/sh", "-c", LINEAGE_SCRIPT],
                        "env": [
                            {"name": "S3_ENDPOINT", "value": platform["s3_endpoint"]},
                            {"name": "AWS_DEFAULT_REGION", "value": platform["s3_region"]},
                            {"name": "MODELS_PREFIX", "value": pipeline.models_prefix},
                            {"name": "HOME", "value": "/tmp"},
                            version_env,
                        ],
                        "envFrom": s3_env_from(pipeline),
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        "securityContext": container_security(),
                    },
                },
                python_template(pipeline, "plan", PLAN_SCRIPT, [
                    version_env,
                    {"name": "LINEAGE", "value": "{{inputs.parameters.lineage}}"},
                    {"name": "APPLICATION", "value": pipeline.application},
                    {"name": "DEPLOYMENT", "value": pipeline.deployment},
                    {"name": "REPLICAS", "value": str(cd["replicas"])},
                    {"name": "MODEL_PLACEHOLDER", "value": MODEL_IMAGE_PLACEHOLDER},
                    {"name": "TOOLS_PLACEHOLDER", "value": TOOLS_IMAGE_PLACEHOLDER},
                    {"name": "TOOLS_IMAGE", "value": pipeline.images["awscli"]},
                    {"name": "SERVE_REPOSITORY", "value": pipeline.serve_repository},
                    {"name": "VERSION_ANNOTATION", "value": VERSION_ANNOTATION},
                    {"name": "OUTPUTS", "value": OUTPUTS},
                    {"name": "HOME", "value": "/tmp"},
                ], outputs=["patch"], inputs=["lineage"]),
                kubectl_template(pipeline, "patch", [
                    "-n", platform["argocd_namespace"], "patch", "application", pipeline.application,
                    "--type", "merge", "-p", "{{inputs.parameters.patch}}"], inputs=["patch"]),
                # Argo CD creates the Deployment on the first sync, then sets the version
                # annotation on its pod template (commonAnnotations); a failed or missing
                # sync ends in not-synced, which says where to look.
                {"name": "sync", "steps": [
                    [{"name": "created", "template": "wait-created", "continueOn": {"failed": True}}],
                    [{"name": "synced", "template": "wait-synced", "continueOn": {"failed": True},
                      "when": "{{steps.created.status}} == Succeeded"}],
                    [{"name": "not-synced", "template": "not-synced", "when": "{{steps.synced.status}} != Succeeded"}],
                ]},
                kubectl_template(pipeline, "wait-created", [*in_namespace, "wait", "--for=create", deployment, timeout]),
                kubectl_template(pipeline, "wait-synced", [
                    *in_namespace, "wait", f"--for=jsonpath={version_jsonpath()}={version}", deployment, timeout]),
                python_template(pipeline, "not-synced", NOT_SYNCED_SCRIPT, [
                    version_env, *where, {"name": "TIMEOUT", "value": str(cd["rollout_timeout"])}]),
                kubectl_template(pipeline, "rollout", [*in_namespace, "rollout", "status", deployment, timeout]),
                python_template(pipeline, "smoke", SMOKE_SCRIPT, [
                    version_env,
                    {"name": "URL", "value": url},
                    {"name": "SMOKE_BODY", "value": kubelet_literal(json.dumps(
                        cd["smoke"]["body"], sort_keys=True, separators=(",", ":"), allow_nan=False))},
                    {"name": "EXPECT_KEY", "value": cd["smoke"]["expect_key"]},
                    {"name": "RETRIES", "value": str(SMOKE_RETRIES)},
                    {"name": "RETRY_DELAY", "value": str(SMOKE_RETRY_DELAY)},
                    {"name": "MAX_TIME", "value": str(SMOKE_MAX_TIME)},
                ]),
            ],
        },
    }


def serving_patch(pipeline):
    """Strategic-merge patch the Application applies to the repo's serving Deployment:
    the platform's pull secret, S3 location/credentials for the model download, and
    scheduling away from GPU nodes (serving never takes a GPU)."""
    platform = pipeline.platform
    patch = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": pipeline.deployment},
        "spec": {"template": {"spec": {
            "imagePullSecrets": [{"name": platform["registry_push_secret"]}],
            "securityContext": pod_security(),
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": GPU_LABEL, "operator": "DoesNotExist"}]}]}}},
            "initContainers": [{
                "name": FETCH_MODEL_CONTAINER,
                "env": [
                    {"name": "S3_ENDPOINT", "value": platform["s3_endpoint"]},
                    {"name": "AWS_DEFAULT_REGION", "value": platform["s3_region"]},
                    {"name": "MODEL_BASE_URI", "value": pipeline.models_prefix},
                ],
                "envFrom": s3_env_from(pipeline),
                "securityContext": container_security(),
            }],
        }}},
    }
    return json.dumps(patch, sort_keys=True)


def serving_container_patch():
    """JSON 6902 patch: the restricted securityContext on the serving container (the
    first one; the Deployment's own sidecars must bring theirs)."""
    return json.dumps([{"op": "add", "path": "/spec/template/spec/containers/0/securityContext",
                        "value": container_security()}], sort_keys=True)


def application(pipeline):
    platform = pipeline.platform
    target = {"group": "apps", "version": "v1", "kind": "Deployment", "name": pipeline.deployment}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": pipeline.application,
            "namespace": platform["argocd_namespace"],
            "labels": pipeline.labels("cd"),
            "finalizers": ["resources-finalizer.argocd.argoproj.io"],
        },
        # targetRevision, kustomize images/replicas/commonAnnotations and the automated
        # sync policy are owned by the CD workflow (kubectl patch); they are left out here
        # so that re-running the playbook never reverts a deployed model version. Until the
        # first CD the Application does not sync at all: nothing pushed to the repository
        # is deployed unless it passed CI and the CT gate, and afterwards Argo CD follows
        # only the commit SHA the CD workflow pinned.
        "spec": {
            "project": platform["argocd_project"],
            "source": {
                "repoURL": pipeline.spec["repo"]["url"],
                "path": pipeline.deploy_path,
                "kustomize": {"patches": [
                    {"target": target, "patch": serving_patch(pipeline)},
                    {"target": target, "patch": serving_container_patch()},
                ]},
            },
            "destination": {"server": "https://kubernetes.default.svc", "namespace": pipeline.namespace},
            "syncPolicy": {"syncOptions": ["CreateNamespace=false"]},
        },
    }
