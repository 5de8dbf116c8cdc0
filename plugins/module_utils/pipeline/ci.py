# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""CI stage: WorkflowTemplate <name>-ci cloning the pushed commit and building the model
image with Kaniko (layer cache in the registry's cache project)."""

from __future__ import annotations

from .events import chain_parameter, chain_step, next_stage_template

WORKSPACE = "/work"
OUTPUTS = "/tmp/outputs"

# Resolves the revision (commit SHA, tag or branch) in /work/src and writes the outputs
# every stage agrees on: commit-sha, git-ref, version (= tag for tags, else short SHA).
# Values arrive as environment variables, never spliced into the script text.
CHECKOUT_SCRIPT = r"""set -eu
mkdir -p "$OUTPUTS"
if [ -n "${GIT_PASSWORD:-}" ]; then
  git config --global credential.helper '!f() { echo "username=${GIT_USERNAME}"; echo "password=${GIT_PASSWORD}"; }; f'
fi
git init -q /work/src
cd /work/src
git remote add origin "$REPO_URL"
if git fetch -q --depth 1 origin "$REVISION"; then
  TARGET=FETCH_HEAD
else
  echo "shallow fetch of '$REVISION' refused by the server, fetching all branches and tags" >&2
  git fetch -q --tags origin '+refs/heads/*:refs/remotes/origin/*'
  TARGET=$REVISION
  git rev-parse -q --verify "$TARGET^{commit}" >/dev/null || TARGET=origin/$REVISION
fi
SHA=$(git rev-parse -q --verify "$TARGET^{commit}") || { echo "revision '$REVISION' not found in $REPO_URL" >&2; exit 1; }
git checkout -q --detach "$SHA"
TAG=""
case "$REF" in
  refs/tags/*) TAG=${REF#refs/tags/} ;;
  "") if git ls-remote --exit-code --tags origin "refs/tags/$REVISION" >/dev/null 2>&1; then TAG=$REVISION; fi ;;
esac
if [ -n "$TAG" ]; then
  VERSION=$TAG
  GIT_REF=refs/tags/$TAG
else
  VERSION=$(printf '%s' "$SHA" | cut -c1-7)
  GIT_REF=${REF:-$REVISION}
fi
if ! printf '%s' "$GIT_REF" | grep -Eq '^[A-Za-z0-9_][A-Za-z0-9_./-]{0,254}$'; then
  echo "git ref '$GIT_REF' is not a plain ref name (letters, digits, '_', '.', '/', '-'; at most 255)" >&2
  exit 1
fi
if ! printf '%s' "$VERSION" | grep -Eq '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$'; then
  echo "git tag '$TAG' cannot be a model version / image tag (letters, digits, '_', '.', '-'; at most 128)" >&2
  exit 1
fi
for file in $REQUIRED_FILES; do
  [ -f "$file" ] || { echo "$file is missing in $REPO_URL at $SHA" >&2; exit 1; }
done
printf '%s' "$SHA" > "$OUTPUTS/commit-sha"
printf '%s' "$GIT_REF" > "$OUTPUTS/git-ref"
printf '%s' "$VERSION" > "$OUTPUTS/version"
echo "checked out $REPO_URL at $SHA (ref $GIT_REF, version $VERSION)"
"""


def workspace_claim(size):
    return {
        "metadata": {"name": "workspace"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }


def git_credentials(pipeline):
    """(env, volumes, volumeMounts) giving the checkout container access to a private repo."""
    secret = pipeline.spec["repo"]["credentials_secret"]
    if not secret:
        return [], [], []
    if pipeline.spec["repo"]["url"].startswith("https://"):
        env = [
            {"name": "GIT_USERNAME", "valueFrom": {"secretKeyRef": {"name": secret, "key": "username"}}},
            {"name": "GIT_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}},
        ]
        return env, [], []
    env = [{
        "name": "GIT_SSH_COMMAND",
        "value": "ssh -i /etc/git-ssh/ssh-privatekey -o IdentitiesOnly=yes "
                 "-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=/tmp/known_hosts",
    }]
    volumes = [{"name": "git-ssh", "secret": {"secretName": secret, "defaultMode": 0o400,
                                              "items": [{"key": "ssh-privatekey", "path": "ssh-privatekey"}]}}]
    mounts = [{"name": "git-ssh", "mountPath": "/etc/git-ssh", "readOnly": True}]
    return env, volumes, mounts


def checkout_template(pipeline, name, required_files, global_outputs):
    """A container template running CHECKOUT_SCRIPT with the git image."""
    env, volumes, mounts = git_credentials(pipeline)
    outputs = []
    for output in ("commit-sha", "git-ref", "version"):
        param = {"name": output, "valueFrom": {"path": f"{OUTPUTS}/{output}"}}
        if output in global_outputs:
            param["globalName"] = global_outputs[output]
        outputs.append(param)
    template = {
        "name": name,
        "inputs": {"parameters": [{"name": "revision"}, {"name": "ref"}]},
        "outputs": {"parameters": outputs},
        "container": {
            "name": "main",
            "image": pipeline.images["git"],
            "command": ["/bin/sh", "-c", CHECKOUT_SCRIPT],
            "env": [
                {"name": "REPO_URL", "value": pipeline.spec["repo"]["url"]},
                {"name": "REVISION", "value": "{{inputs.parameters.revision}}"},
                {"name": "REF", "value": "{{inputs.parameters.ref}}"},
                {"name": "OUTPUTS", "value": OUTPUTS},
                {"name": "REQUIRED_FILES", "value": " ".join(required_files)},
                {"name": "HOME", "value": "/tmp"},
            ] + env,
            "volumeMounts": [{"name": "workspace", "mountPath": WORKSPACE}] + mounts,
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        },
    }
    if volumes:
        template["volumes"] = volumes
    return template


def repo_file(pipeline, relative):
    return "/".join(p for p in (pipeline.repo_subdir, relative) if p)


def ci_workflow_template(pipeline):
    spec = pipeline.spec
    platform = pipeline.platform
    registry = platform["registry_host"]
    dockerfile = repo_file(pipeline, spec["repo"]["dockerfile"])
    args = [
        f"--context=dir://{pipeline.context_dir}",
        f"--dockerfile=/work/src/{dockerfile}",
        f"--destination={pipeline.image_repository}:{{{{inputs.parameters.commit-sha}}}}",
        f"--destination={pipeline.image_repository}:{{{{inputs.parameters.version}}}}",
        "--cache=true",
        f"--cache-repo={pipeline.cache_repository}",
        f"--registry-certificate={registry}=/etc/researchops/ca/ca.crt",
        "--digest-file=/tmp/outputs/digest",
        "--label=org.opencontainers.image.revision={{inputs.parameters.commit-sha}}",
        f"--label=org.opencontainers.image.source={spec['repo']['url']}",
        "--label=org.opencontainers.image.version={{inputs.parameters.version}}",
    ]
    args += [f"--build-arg={item['name']}={item['value']}" for item in spec["ci"]["build_args"]]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": pipeline.meta(pipeline.template("ci"), "ci"),
        "spec": {
            "entrypoint": "ci",
            "serviceAccountName": pipeline.sa("ci"),
            "activeDeadlineSeconds": spec["ci"]["timeout"],
            "workflowMetadata": {"labels": pipeline.labels("ci")},
            "arguments": {"parameters": [
                {"name": "revision", "description": "Commit SHA, tag or branch to build."},
                {"name": "ref", "value": "", "description": "Full git ref of the push (refs/heads/..., refs/tags/...); empty for manual runs."},
                chain_parameter(),
            ]},
            "volumeClaimTemplates": [workspace_claim("2Gi")],
            "volumes": [
                {"name": "docker-config", "secret": {
                    "secretName": platform["registry_push_secret"],
                    "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}},
                {"name": "platform-ca", "configMap": {"name": platform["ca_configmap"],
                                                      "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            ],
            "templates": [
                {"name": "ci", "steps": [
                    [{"name": "checkout", "template": "checkout", "arguments": {"parameters": [
                        {"name": "revision", "value": "{{workflow.parameters.revision}}"},
                        {"name": "ref", "value": "{{workflow.parameters.ref}}"}]}}],
                    [{"name": "build", "template": "build", "arguments": {"parameters": [
                        {"name": "commit-sha", "value": "{{steps.checkout.outputs.parameters.commit-sha}}"},
                        {"name": "version", "value": "{{steps.checkout.outputs.parameters.version}}"}]}}],
                    chain_step("ct", [("revision", "{{steps.checkout.outputs.parameters.commit-sha}}"),
                                      ("ref", "{{steps.checkout.outputs.parameters.git-ref}}")]),
                ]},
                next_stage_template(pipeline, "ct", ["revision", "ref"]),
                checkout_template(pipeline, "checkout", [f"/work/src/{dockerfile}"],
                                  {"commit-sha": "commit-sha", "git-ref": "git-ref", "version": "version"}),
                {
                    "name": "build",
                    "inputs": {"parameters": [{"name": "commit-sha"}, {"name": "version"}]},
                    "outputs": {"parameters": [
                        {"name": "digest", "globalName": "image-digest", "valueFrom": {"path": "/tmp/outputs/digest"}}]},
                    "container": {
                        "name": "main",
                        "image": pipeline.images["kaniko"],
                        "args": args,
                        "volumeMounts": [
                            {"name": "workspace", "mountPath": WORKSPACE},
                            {"name": "docker-config", "mountPath": "/kaniko/.docker", "readOnly": True},
                            {"name": "platform-ca", "mountPath": "/etc/researchops/ca", "readOnly": True},
                        ],
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
                    },
                },
            ],
        },
    }
