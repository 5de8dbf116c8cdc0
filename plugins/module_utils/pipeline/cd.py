# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""CD stage: the Argo CD Application <name>-serving (source: the model repo's deploy/
kustomization) and WorkflowTemplate <name>-cd, which reads a model version's lineage,
points the Application at it, waits for the roll-out and sends a smoke request."""

from __future__ import annotations

import json

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

DEPLOY_SCRIPT = r"""set -eu
field() { printf '%s' "$LINEAGE" | jq -er "$1"; }
CODE_SHA=$(field .code_sha)
# The serving image: the multi-arch manifest list CI built from the same commit.
IMAGE=$SERVE_REPOSITORY:$CODE_SHA
VERSION=$(field .model_version)
if [ "$VERSION" != "$MODEL_VERSION" ]; then
  echo "lineage of $MODEL_VERSION names model version $VERSION: refusing to deploy" >&2; exit 1
fi
if ! printf '%s' "$LINEAGE" | jq -e '.metrics.passed == true' >/dev/null; then
  echo "lineage of model version $VERSION does not record a passed gate: refusing to deploy" >&2; exit 1
fi
PATCH=$(jq -cn --arg sha "$CODE_SHA" --arg model "$MODEL_PLACEHOLDER=$IMAGE" \
  --arg tools "$TOOLS_PLACEHOLDER=$TOOLS_IMAGE" --arg deployment "$DEPLOYMENT" \
  --argjson replicas "$REPLICAS" --arg version "$VERSION" --arg key "$VERSION_ANNOTATION" \
  '{spec: {source: {targetRevision: $sha, kustomize: {images: [$model, $tools],
    replicas: [{name: $deployment, count: $replicas}], commonAnnotations: {($key): $version}}},
    syncPolicy: {automated: {prune: true, selfHeal: true}}}}')
kubectl -n "$ARGOCD_NAMESPACE" patch application "$APPLICATION" --type merge -p "$PATCH"
echo "Application $APPLICATION: model version $VERSION, image $IMAGE, manifests at $CODE_SHA"
DEADLINE=$(( $(date +%s) + TIMEOUT ))
JSONPATH="{.spec.template.metadata.annotations.$(printf '%s' "$VERSION_ANNOTATION" | sed 's/\./\\./g')}"
until [ "$(kubectl -n "$NAMESPACE" get deployment "$DEPLOYMENT" -o jsonpath="$JSONPATH" 2>/dev/null)" = "$VERSION" ]; do
  if [ "$(date +%s)" -ge "$DEADLINE" ]; then
    echo "Argo CD did not sync model version $VERSION to deployment/$DEPLOYMENT within ${TIMEOUT}s;" \
      "see: kubectl -n $ARGOCD_NAMESPACE get application $APPLICATION -o yaml" >&2
    exit 1
  fi
  sleep 5
done
kubectl -n "$NAMESPACE" rollout status deployment "$DEPLOYMENT" --timeout="${TIMEOUT}s"
"""

SMOKE_SCRIPT = r"""set -eu
URL="http://$SERVICE.$NAMESPACE.svc.cluster.local:$PORT$SMOKE_PATH"
printf '%s' "$SMOKE_BODY" > /tmp/body.json
if ! OUT=$(curl -sS --fail-with-body --retry 5 --retry-connrefused --retry-delay 3 --max-time 30 \
    -X POST -H 'Content-Type: application/json' --data @/tmp/body.json "$URL"); then
  echo "smoke request POST $URL failed: $OUT" >&2; exit 1
fi
if ! printf '%s' "$OUT" | jq -e --arg key "$EXPECT_KEY" 'type == "object" and has($key)' >/dev/null; then
  echo "smoke request POST $URL answered without '$EXPECT_KEY': $(printf '%s' "$OUT" | head -c 500)" >&2; exit 1
fi
echo "smoke request POST $URL ok for model version $MODEL_VERSION: $(printf '%s' "$OUT" | head -c 500)"
"""


# Worst case of one CD run, in seconds, besides the two roll-out waits of the deploy step
# (Argo CD picking up the revision, then `kubectl rollout status`, each up to
# rollout_timeout): the smoke request (5 retries of at most 30 s + 3 s apart), the lineage
# read and three pod start-ups.
CD_OVERHEAD = 300


def cd_deadline(rollout_timeout):
    """activeDeadlineSeconds of a CD Workflow: its own worst case, plus as long again for
    the one CD of the same pipeline it may wait for behind the mutex."""
    return 2 * (2 * rollout_timeout + CD_OVERHEAD)


def cd_workflow_template(pipeline):
    spec = pipeline.spec
    cd = spec["cd"]
    platform = pipeline.platform
    version_env = {"name": "MODEL_VERSION", "value": "{{workflow.parameters.model-version}}"}
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
                    [{"name": "deploy", "template": "deploy", "arguments": {"parameters": [
                        {"name": "lineage", "value": "{{steps.lineage.outputs.parameters.lineage}}"}]}}],
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
                {
                    "name": "deploy",
                    "inputs": {"parameters": [{"name": "lineage"}]},
                    "container": {
                        "name": "main",
                        "image": pipeline.images["kubectl"],
                        "command": ["/bin/sh", "-c", DEPLOY_SCRIPT],
                        "env": [
                            version_env,
                            {"name": "LINEAGE", "value": "{{inputs.parameters.lineage}}"},
                            {"name": "ARGOCD_NAMESPACE", "value": platform["argocd_namespace"]},
                            {"name": "APPLICATION", "value": pipeline.application},
                            {"name": "NAMESPACE", "value": pipeline.namespace},
                            {"name": "DEPLOYMENT", "value": pipeline.deployment},
                            {"name": "REPLICAS", "value": str(cd["replicas"])},
                            {"name": "TIMEOUT", "value": str(cd["rollout_timeout"])},
                            {"name": "MODEL_PLACEHOLDER", "value": MODEL_IMAGE_PLACEHOLDER},
                            {"name": "TOOLS_PLACEHOLDER", "value": TOOLS_IMAGE_PLACEHOLDER},
                            {"name": "TOOLS_IMAGE", "value": pipeline.images["awscli"]},
                            {"name": "SERVE_REPOSITORY", "value": pipeline.serve_repository},
                            {"name": "HOME", "value": "/tmp"},
                            {"name": "VERSION_ANNOTATION", "value": "researchops.io/model-version"},
                        ],
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        "securityContext": container_security(),
                    },
                },
                {
                    "name": "smoke",
                    "container": {
                        "name": "main",
                        "image": pipeline.images["kubectl"],
                        "command": ["/bin/sh", "-c", SMOKE_SCRIPT],
                        "env": [
                            version_env,
                            {"name": "SERVICE", "value": pipeline.service},
                            {"name": "NAMESPACE", "value": pipeline.namespace},
                            {"name": "PORT", "value": str(cd["port"])},
                            {"name": "SMOKE_PATH", "value": cd["smoke"]["path"]},
                            {"name": "SMOKE_BODY", "value": kubelet_literal(json.dumps(
                                cd["smoke"]["body"], sort_keys=True, separators=(",", ":"), allow_nan=False))},
                            {"name": "EXPECT_KEY", "value": cd["smoke"]["expect_key"]},
                        ],
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        "securityContext": container_security(),
                    },
                },
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
