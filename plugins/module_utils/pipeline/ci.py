# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""CI stage: WorkflowTemplate <name>-ci. Resolve the pushed revision, then build, each in
its own pod on a node of the image's architecture:

- the training image (Dockerfile target ci.train_target) for ct.architecture:
  <registry>/<project>/<image>:<commit sha> and :<model version>;
- the serving image (target ci.serve_target) once per ci.serving_architectures, joined
  into one multi-arch manifest list <registry>/<project>/<image>-serve:<sha> / :<version>.

Each build pod clones the commit into an emptyDir, runs Kaniko as root with no
credentials and no API token of use (it writes an OCI tarball, never pushes), and hands the
tarball to crane (non-root), the only container that mounts the registry push
credentials: a RUN step of the Dockerfile cannot read them. Kaniko needs root because it
unpacks the base image over its own root filesystem and runs RUN steps there; it is
confined to that one container of a short-lived pod, with the RuntimeDefault seccomp
profile and no privilege escalation."""

from __future__ import annotations

from .events import chain_parameter, chain_step, next_stage_template
from .security import container_security, kaniko_security, pod_security

WORKSPACE = "/work"
OUTPUTS = "/tmp/outputs"

# Resolves the revision (commit SHA, tag or branch) in /work/src and writes the outputs
# every stage agrees on: commit-sha, git-ref, version (= tag for tags, else short SHA).
# Values arrive as environment variables, never spliced into the script text.
# It runs in the git image (images.git: the Kubernetes project's git-sync image, whose
# Dockerfile.in stages bash as /bin/sh, git, openssh-client, coreutils and grep) with the
# pod's uid, not the image's own 65533.
CHECKOUT_SCRIPT = r"""set -eu
mkdir -p "$OUTPUTS"
if ! id -un >/dev/null 2>&1 && [ -w /etc/passwd ]; then
  # ssh exits with "No user exists for uid" when the pod's uid has no passwd entry; the git
  # image leaves /etc/passwd writable for this (kubernetes/git-sync Dockerfile.in, addUser).
  echo "checkout:x:$(id -u):$(id -g)::$HOME:/sbin/nologin" >> /etc/passwd
fi
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


def kubelet_literal(text):
    """`text` as the kubelet passes it on: it expands $(VAR) and turns $$ into $ in env
    values, command and args (escape every '$')."""
    return text.replace("$", "$$")


def git_credentials(pipeline):
    """(env, volumes, volumeMounts) giving a checkout container access to a private repo."""
    repo = pipeline.spec["repo"]
    secret = repo["credentials_secret"]
    if not secret:
        return [], [], []
    if repo["url"].startswith("https://"):
        env = [
            {"name": "GIT_USERNAME", "valueFrom": {"secretKeyRef": {"name": secret, "key": "username"}}},
            {"name": "GIT_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}},
        ]
        return env, [], []
    volumes = [{"name": "git-ssh", "secret": {"secretName": secret, "defaultMode": 0o400,
                                              "items": [{"key": "ssh-privatekey", "path": "ssh-privatekey"}]}}]
    mounts = [{"name": "git-ssh", "mountPath": "/etc/git-ssh", "readOnly": True}]
    if repo["known_hosts_secret"]:
        # Host keys pinned by the operator: an unknown or changed key fails the clone.
        hosts = "-o StrictHostKeyChecking=yes -o UserKnownHostsFile=/etc/git-known-hosts/known_hosts"
        volumes.append({"name": "git-known-hosts", "secret": {
            "secretName": repo["known_hosts_secret"], "items": [{"key": "known_hosts", "path": "known_hosts"}]}})
        mounts.append({"name": "git-known-hosts", "mountPath": "/etc/git-known-hosts", "readOnly": True})
    else:
        hosts = "-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=/tmp/known_hosts"
    env = [{"name": "GIT_SSH_COMMAND", "value": f"ssh -i /etc/git-ssh/ssh-privatekey -o IdentitiesOnly=yes {hosts}"}]
    return env, volumes, mounts


def checkout_container(pipeline, required_files, revision, ref, workspace="workspace"):
    """Container running CHECKOUT_SCRIPT with the git image; (container, volumes)."""
    env, volumes, mounts = git_credentials(pipeline)
    container = {
        "name": "main",
        "image": pipeline.images["git"],
        "command": ["/bin/sh", "-c", CHECKOUT_SCRIPT],
        "env": [
            {"name": "REPO_URL", "value": pipeline.spec["repo"]["url"]},
            {"name": "REVISION", "value": revision},
            {"name": "REF", "value": ref},
            {"name": "OUTPUTS", "value": OUTPUTS},
            {"name": "REQUIRED_FILES", "value": " ".join(required_files)},
            {"name": "HOME", "value": "/tmp"},
        ] + env,
        "volumeMounts": [{"name": workspace, "mountPath": WORKSPACE}] + mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": container_security(),
    }
    return container, volumes


def checkout_template(pipeline, name, required_files, global_outputs, workspace=True):
    """A container template running CHECKOUT_SCRIPT; outputs commit-sha, git-ref, version."""
    container, volumes = checkout_container(
        pipeline, required_files, "{{inputs.parameters.revision}}", "{{inputs.parameters.ref}}")
    outputs = []
    for output in ("commit-sha", "git-ref", "version"):
        param = {"name": output, "valueFrom": {"path": f"{OUTPUTS}/{output}"}}
        if output in global_outputs:
            param["globalName"] = global_outputs[output]
        outputs.append(param)
    if not workspace:
        volumes = [{"name": "workspace", "emptyDir": {}}] + volumes
    template = {
        "name": name,
        "inputs": {"parameters": [{"name": "revision"}, {"name": "ref"}]},
        "outputs": {"parameters": outputs},
        "container": container,
    }
    if volumes:
        template["volumes"] = volumes
    return template


def repo_file(pipeline, relative):
    return "/".join(p for p in (pipeline.repo_subdir, relative) if p)


def crane_container(pipeline, name, args, dependencies):
    """crane (non-root) with the push credentials and the platform CA; nothing else."""
    return {
        "name": name,
        "image": pipeline.images["crane"],
        "command": ["/ko-app/crane"],
        "args": args,
        "dependencies": dependencies,
        "env": [
            {"name": "DOCKER_CONFIG", "value": "/etc/registry-push"},
            {"name": "SSL_CERT_FILE", "value": "/etc/researchops/ca/ca.crt"},
            {"name": "HOME", "value": "/tmp"},
        ],
        "volumeMounts": [
            {"name": "workspace", "mountPath": WORKSPACE},
            {"name": "registry-push", "mountPath": "/etc/registry-push", "readOnly": True},
            {"name": "platform-ca", "mountPath": "/etc/researchops/ca", "readOnly": True},
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": container_security(),
    }


def push_volumes(pipeline):
    platform = pipeline.platform
    return [
        {"name": "registry-push", "secret": {
            "secretName": platform["registry_push_secret"],
            "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}},
        {"name": "platform-ca", "configMap": {"name": platform["ca_configmap"],
                                              "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
    ]


def build_template(pipeline, name, target, arch, destination, tags):
    """One pod on a node of `arch`: clone -> Kaniko (root, no credentials, tarball) ->
    crane push (non-root, push credentials) [-> crane tag for each extra tag]."""
    spec = pipeline.spec
    resources = spec["ci"]["resources"]
    dockerfile = repo_file(pipeline, spec["repo"]["dockerfile"])
    checkout, git_volumes = checkout_container(
        pipeline, [f"/work/src/{dockerfile}"], "{{inputs.parameters.commit-sha}}", "{{inputs.parameters.git-ref}}")
    checkout["name"] = "checkout"
    args = [
        f"--context=dir://{pipeline.context_dir}",
        f"--dockerfile=/work/src/{dockerfile}",
        f"--target={target}",
        f"--custom-platform=linux/{arch}",
        f"--destination={destination}",
        "--no-push",
        "--tar-path=/work/image.tar",
        f"--registry-certificate={pipeline.platform['registry_host']}=/etc/researchops/ca/ca.crt",
        "--label=org.opencontainers.image.revision={{inputs.parameters.commit-sha}}",
        f"--label=org.opencontainers.image.source={spec['repo']['url']}",
        "--label=org.opencontainers.image.version={{inputs.parameters.version}}",
    ]
    args += [f"--build-arg={item['name']}={kubelet_literal(item['value'])}" for item in spec["ci"]["build_args"]]
    kaniko = {
        "name": "build",
        "image": pipeline.images["kaniko"],
        # The executor needs the command: without one, Argo's emissary asks the registry
        # for the image's entrypoint.
        "command": ["/kaniko/executor"],
        "args": args,
        "dependencies": ["checkout"],
        "volumeMounts": [
            {"name": "workspace", "mountPath": WORKSPACE},
            {"name": "platform-ca", "mountPath": "/etc/researchops/ca", "readOnly": True},
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": {
            "requests": {"cpu": resources["cpu"], "memory": resources["memory"],
                         "ephemeral-storage": resources["ephemeral_storage"]},
            "limits": {"memory": resources["memory"], "ephemeral-storage": resources["ephemeral_storage"]},
        },
        "securityContext": kaniko_security(),
    }
    containers = [checkout, kaniko]
    push = crane_container(pipeline, "push", ["push", "/work/image.tar", destination], ["build"])
    containers.append(push)
    previous = "push"
    for index, tag in enumerate(tags):
        tagger = crane_container(pipeline, f"tag-{index}", ["tag", destination, tag], [previous])
        containers.append(tagger)
        previous = tagger["name"]
    # Argo saves outputs and reports the result of the container named main only.
    last = containers[-1]["name"]
    containers[-1]["name"] = "main"
    for container in containers[1:]:
        container["dependencies"] = ["main" if dep == last else dep for dep in container["dependencies"]]
    return {
        "name": name,
        "inputs": {"parameters": [{"name": "commit-sha"}, {"name": "git-ref"}, {"name": "version"}]},
        "nodeSelector": {"kubernetes.io/arch": arch},
        "volumes": [{"name": "workspace", "emptyDir": {}}] + push_volumes(pipeline) + git_volumes,
        "containerSet": {"containers": containers},
    }


def manifest_list_template(pipeline):
    """Join the per-architecture serving images into one manifest list and tag it."""
    archs = pipeline.spec["ci"]["serving_architectures"]
    serve = pipeline.serve_repository
    index = crane_container(
        pipeline, "index",
        ["index", "append", "--tag", f"{serve}:{{{{inputs.parameters.commit-sha}}}}"]
        + [arg for arch in archs for arg in ("--manifest", f"{serve}:{{{{inputs.parameters.commit-sha}}}}-{arch}")],
        [])
    del index["dependencies"]
    tag = crane_container(pipeline, "main", ["tag", f"{serve}:{{{{inputs.parameters.commit-sha}}}}",
                                             "{{inputs.parameters.version}}"], ["index"])
    return {
        "name": "serving-manifest-list",
        "inputs": {"parameters": [{"name": "commit-sha"}, {"name": "version"}]},
        "volumes": [{"name": "workspace", "emptyDir": {}}] + push_volumes(pipeline),
        "containerSet": {"containers": [index, tag]},
    }


def ci_workflow_template(pipeline):
    spec = pipeline.spec
    ci = spec["ci"]
    sha = "{{inputs.parameters.commit-sha}}"
    from_checkout = {"parameters": [
        {"name": name, "value": f"{{{{steps.checkout.outputs.parameters.{name}}}}}"}
        for name in ("commit-sha", "git-ref", "version")]}
    builds = [{"name": "build-train", "template": "build-train", "arguments": from_checkout}]
    builds += [{"name": f"build-serve-{arch}", "template": f"build-serve-{arch}", "arguments": from_checkout}
               for arch in ci["serving_architectures"]]
    templates = [
        {"name": "ci", "steps": [
            [{"name": "checkout", "template": "checkout", "arguments": {"parameters": [
                {"name": "revision", "value": "{{workflow.parameters.revision}}"},
                {"name": "ref", "value": "{{workflow.parameters.ref}}"}]}}],
            builds,
            [{"name": "serving-manifest-list", "template": "serving-manifest-list", "arguments": {"parameters": [
                {"name": "commit-sha", "value": "{{steps.checkout.outputs.parameters.commit-sha}}"},
                {"name": "version", "value": "{{steps.checkout.outputs.parameters.version}}"}]}}],
            chain_step("ct", [("revision", "{{steps.checkout.outputs.parameters.commit-sha}}"),
                              ("ref", "{{steps.checkout.outputs.parameters.git-ref}}")]),
        ]},
        checkout_template(pipeline, "checkout", [f"/work/src/{repo_file(pipeline, spec['repo']['dockerfile'])}"],
                          {"commit-sha": "commit-sha", "git-ref": "git-ref", "version": "version"}, workspace=False),
        build_template(pipeline, "build-train", ci["train_target"], spec["ct"]["architecture"],
                       f"{pipeline.image_repository}:{sha}", ["{{inputs.parameters.version}}"]),
    ]
    templates += [build_template(pipeline, f"build-serve-{arch}", ci["serve_target"], arch,
                                 f"{pipeline.serve_repository}:{sha}-{arch}", [])
                  for arch in ci["serving_architectures"]]
    templates += [manifest_list_template(pipeline), next_stage_template(pipeline, "ct", ["revision", "ref"])]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": pipeline.meta(pipeline.template("ci"), "ci"),
        "spec": {
            "entrypoint": "ci",
            "serviceAccountName": pipeline.sa("ci"),
            "activeDeadlineSeconds": ci["timeout"],
            "workflowMetadata": {"labels": pipeline.labels("ci")},
            "securityContext": pod_security(),
            "arguments": {"parameters": [
                {"name": "revision", "description": "Commit SHA, tag or branch to build."},
                {"name": "ref", "value": "", "description": "Full git ref of the push (refs/heads/..., refs/tags/...); empty for manual runs."},
                chain_parameter(),
            ]},
            "templates": templates,
        },
    }
