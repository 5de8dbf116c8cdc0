"""The generated pipeline checked against what the upstream code it runs on requires.

Every expectation here is read from the pinned upstream sources (argo-events v1.9.11,
argo-workflows v4.1.2 and the argo CLI v3.7.9 that argo-events v1.9.11 bundles in its
image, argo-cd v3.5.1), never from our own generator: each test's docstring names the
upstream file and function it follows."""
from __future__ import annotations

import json

import pytest
from pipeline_fixtures import example_spec, images, platform

from ansible_collections.researchops.mlops.plugins.filter.pipeline import pipeline_objects

NS = "mlops-pipelines"
READ_WRITE = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "*"}


def generate(spec=None):
    return pipeline_objects([spec or example_spec()], platform=platform(), images=images())["mnist"]


@pytest.fixture(scope="module")
def objects():
    return generate()


def find(objects, kind, name, namespace=NS):
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name
             and o["metadata"].get("namespace") == namespace]
    assert len(found) == 1, f"{kind} {namespace}/{name}"
    return found[0]


def granted(objects, account, namespace=NS):
    """{(apiGroup, resource): set(verbs)} the ServiceAccount gets in `namespace`."""
    verbs = {}
    for binding in (o for o in objects if o["kind"] == "RoleBinding" and o["metadata"]["namespace"] == namespace):
        if {"kind": "ServiceAccount", "name": account, "namespace": NS} not in binding["subjects"]:
            continue
        role = find(objects, "Role", binding["roleRef"]["name"], namespace)
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    verbs.setdefault((group, resource), set()).update(rule["verbs"])
    return verbs


def template(wft, name):
    return next(t for t in wft["spec"]["templates"] if t["name"] == name)


EXECUTOR = {("argoproj.io", "workflowtaskresults"): {"create", "patch"}}

# (account, needed {(group, resource): verbs} in the pipelines namespace)
NEEDED = {
    # argo-workflows v4.1.2 workflow/executor/taskresult.go: the executor of every step pod
    # Create()s and Patch()es its WorkflowTaskResult; nothing else is called.
    "mnist-ci": EXECUTOR,
    "mnist-ct": EXECUTOR,
    # kubectl get/rollout status deployment (list+watch with a field selector).
    "mnist-cd": {**EXECUTOR, ("apps", "deployments"): {"get", "list", "watch"}},
    # argo-workflows v4.1.2 workflow/executor/resource.go ExecResource: `kubectl apply -f
    # manifest -o json` (GET, then CREATE of the absent Workflow).
    "mnist-chain": {**EXECUTOR, ("argoproj.io", "workflows"): {"get", "create"}},
    # argo-events v1.9.11 pkg/sensors/triggers/argo-workflow/argo-workflow.go Execute:
    # `argo submit` (create; argo v3.7.9 server/workflow/workflow_server.go CreateWorkflow
    # validates the workflowTemplateRef through WorkflowTemplateClientStore -> Get), then
    # List of workflows by the submitted labels.
    "mnist-sensor": {("argoproj.io", "workflows"): {"create", "list"},
                     ("argoproj.io", "workflowtemplates"): {"get"}},
    # The GitHub webhook EventSource (pkg/eventsources/sources/github/start.go) calls no
    # Kubernetes API; with the JetStream EventBus it needs no Lease either
    # (pkg/shared/leaderelection/leaderelection.go NewElector).
    "mnist-eventsource": {},
}


@pytest.mark.parametrize("account", sorted(NEEDED))
def test_service_account_has_exactly_the_verbs_upstream_calls(objects, account):
    """Each ServiceAccount: every verb its upstream code calls, nothing more; never Secrets,
    never delete/update/escalate, never a wildcard (sources in NEEDED above)."""
    have = granted(objects, account)
    assert have == NEEDED[account]
    for (group, resource), verbs in have.items():
        assert resource != "secrets" and "*" not in verbs | {group, resource}
        assert not verbs & {"delete", "deletecollection", "update", "escalate", "bind", "impersonate"}


def test_sensor_role_lists_workflows_after_submit(objects):
    """argo-events v1.9.11 pkg/sensors/triggers/argo-workflow/argo-workflow.go Execute:
    after `argo submit` the trigger calls namespableDynamicClient...List(LabelSelector:
    events.argoproj.io/sensor,trigger,action-timestamp) on workflows and fails the trigger
    when it cannot; without `list` every trigger is reported failed."""
    assert "list" in granted(objects, "mnist-sensor")[("argoproj.io", "workflows")]
    assert "get" in granted(objects, "mnist-sensor")[("argoproj.io", "workflowtemplates")]


def test_cd_account_in_argocd_namespace_only_its_application(objects):
    """The CD deploy step runs `kubectl patch application <name>` only."""
    assert granted(objects, "mnist-cd", "argocd") == {("argoproj.io", "applications"): {"get", "patch"}}
    role = find(objects, "Role", "mnist-cd", "argocd")
    assert role["rules"][0]["resourceNames"] == ["mnist-serving"]


def test_accounts_without_api_needs_mount_no_token(objects):
    account = find(objects, "ServiceAccount", "mnist-eventsource")
    assert account["automountServiceAccountToken"] is False


def test_sensor_trigger_is_at_least_once(objects):
    """argo-events v1.9.11 pkg/apis/events/v1alpha1/sensor_types.go Trigger.AtLeastOnce
    (default false: at-most-once) and pkg/sensors/listener.go listenEvents: the EventBus
    connection is opened with trigger.AtLeastOnce and the trigger's RetryStrategy is used by
    DoWithRetry (Steps: 1 without one). A push must be retried, then redelivered, not lost."""
    trigger = find(objects, "Sensor", "mnist-ci")["spec"]["triggers"][0]
    assert trigger["atLeastOnce"] is True
    assert trigger["retryStrategy"]["steps"] >= 3


def test_no_completion_watch_that_a_restart_can_lose(objects):
    """argo-events v1.9.11 pkg/eventsources/sources/resource/start.go passFilters: with
    afterStart, an ADD whose getEventTime (the object's creationTimestamp) is before the
    EventSource pod's start is dropped, so a stage finishing while the pod restarts would
    never start the next one. The chain must not rest on a resource EventSource."""
    for source in (o for o in objects if o["kind"] == "EventSource"):
        assert "resource" not in source["spec"]
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "Sensor"] == ["mnist-ci"]


@pytest.mark.parametrize("stage, following, passed", [
    ("ci", "ct", {"revision": "commit-sha", "ref": "git-ref"}),
    ("ct", "cd", {"model-version": "version"}),
])
def test_stage_last_step_creates_next_stage_exactly_once(objects, stage, following, passed):
    """argo-workflows v4.1.2 workflow/controller/steps.go executeSteps runs step groups in
    order and stops at the first failed one, so the last group runs only after every earlier
    step succeeded (for CT: after the gate); the controller persists node state in the
    Workflow's status, so the step survives controller and pod restarts.
    workflow/executor/resource.go getKubectlArguments builds `kubectl <action> -f manifest`:
    with action apply and a name derived from {{workflow.name}}, a retried step finds the
    Workflow it created and creates no second one (create would fail with AlreadyExists).
    workflow/controller/workflowpod.go setupServiceAccount: the template's
    serviceAccountName is the pod's, so only this step holds the create right."""
    wft = find(objects, "WorkflowTemplate", f"mnist-{stage}")
    steps = template(wft, stage)["steps"]
    last = steps[-1]
    assert len(last) == 1 and last[0]["template"] == f"start-{following}"
    assert last[0]["when"] == "{{workflow.parameters.chain}} == true"
    arguments = {p["name"]: p["value"] for p in last[0]["arguments"]["parameters"]}
    assert arguments == {name: f"{{{{steps.checkout.outputs.parameters.{output}}}}}" for name, output in passed.items()}
    start = template(wft, f"start-{following}")
    assert start["serviceAccountName"] == "mnist-chain"
    assert start["resource"]["action"] == "apply"
    assert start["retryStrategy"]["limit"] >= 3 and start["retryStrategy"]["retryPolicy"] == "Always"
    manifest = json.loads(start["resource"]["manifest"])
    assert manifest["kind"] == "Workflow" and "generateName" not in manifest["metadata"]
    assert manifest["metadata"]["name"] == "{{workflow.name}}-" + following
    assert manifest["metadata"]["namespace"] == NS
    assert manifest["metadata"]["labels"]["researchops.io/stage"] == following
    ref = manifest["spec"]["workflowTemplateRef"]["name"]
    assert ref == f"mnist-{following}"
    # Every required argument of the next template is passed; nothing unknown is.
    target = find(objects, "WorkflowTemplate", ref)["spec"]["arguments"]["parameters"]
    required = {p["name"] for p in target if "value" not in p}
    given = {p["name"] for p in manifest["spec"]["arguments"]["parameters"]}
    assert required <= given <= {p["name"] for p in target}
    # The chained Workflow's name stays a valid label value (<= 63) for the longest name.
    assert len("a" * 30 + "-ci-abcde" + "-ct" + "-cd") <= 63


def test_manual_rerun_can_stop_the_chain(objects):
    for stage in ("ci", "ct"):
        params = {p["name"]: p for p in find(objects, "WorkflowTemplate", f"mnist-{stage}")["spec"]["arguments"]["parameters"]}
        assert params["chain"]["value"] == "true" and params["chain"]["enum"] == ["true", "false"]


def test_cd_is_a_mutex_per_pipeline(objects):
    """argo-workflows v4.1.2 pkg/apis/workflow/v1alpha1/workflow_types.go Synchronization:
    `mutexes` (v3.6 and after; the singular `mutex` is gone from the v4 schema)."""
    spec = find(objects, "WorkflowTemplate", "mnist-cd")["spec"]
    assert spec["synchronization"] == {"mutexes": [{"name": "mnist-cd"}]}


def test_cd_deadline_covers_its_worst_case_wait(objects):
    """The deploy step waits up to rollout_timeout for Argo CD, then up to rollout_timeout in
    `kubectl rollout status`; the smoke request retries 5 times (max-time 30 s, 3 s apart);
    behind the mutex it may wait for one other CD run as long."""
    spec = find(objects, "WorkflowTemplate", "mnist-cd")["spec"]
    rollout = example_spec()["cd"]["rollout_timeout"]
    one_run = 2 * rollout + 5 * 33 + 3 * 30
    assert spec["activeDeadlineSeconds"] >= 2 * one_run


def test_serving_application_does_not_sync_before_a_gated_cd(objects):
    """argo-cd v3.5.1: an Application without spec.syncPolicy.automated is never synced by
    the controller on its own (controller/appcontroller.go autoSync returns early unless
    SyncPolicy.IsAutomatedSyncEnabled()), and an empty targetRevision means HEAD. The generated
    Application must not auto-sync; the CD workflow turns automated sync on together with
    pinning targetRevision to the gated commit."""
    app = find(objects, "Application", "mnist-serving", "argocd")
    assert "automated" not in app["spec"].get("syncPolicy", {})
    assert "targetRevision" not in app["spec"]["source"]
    plan = template(find(objects, "WorkflowTemplate", "mnist-cd"), "plan")["script"]["source"]
    assert '"targetRevision": code_sha' in plan and '"syncPolicy": {"automated": {"prune": True, "selfHeal": True}}' in plan


def _secret_refs(node, found=None):
    """Every Secret name a pod spec fragment references (volumes, env, envFrom, pull secrets)."""
    found = set() if found is None else found
    if isinstance(node, dict):
        if "secretName" in node:
            found.add(node["secretName"])
        for key in ("secretRef", "secretKeyRef"):
            if key in node:
                found.add(node[key]["name"])
        for item in node.get("imagePullSecrets", []):
            found.add(item["name"])
        for value in node.values():
            _secret_refs(value, found)
    elif isinstance(node, list):
        for item in node:
            _secret_refs(item, found)
    return found


def test_steps_reach_only_their_own_secrets():
    """A pod can read a Secret only through the API (no step account has `secrets`: see
    above) or by naming it in its spec. The WorkflowTemplates name only this pipeline's
    Secrets and the platform's shared ones; the steps running the repository's own code
    (train, evaluate) name none, whatever another pipeline in the namespace holds."""
    plat = platform()
    spec = example_spec()
    spec["repo"]["credentials_secret"] = "mnist-git"
    objs = generate(spec)
    shared = {plat["registry_push_secret"], plat["s3_credentials_secret"]}
    for wft in (o for o in objs if o["kind"] == "WorkflowTemplate"):
        assert _secret_refs(wft) <= shared | {"mnist-git"}, wft["metadata"]["name"]
    ct = find(objs, "WorkflowTemplate", "mnist-ct")
    for name in ("train", "evaluate"):
        assert _secret_refs(template(ct, name)) == set(), name


def _gitlab_spec():
    spec = example_spec()
    spec["repo"]["url"] = "https://gitlab.lab.internal/ml/vision/mnist.git"
    spec["webhook"] = {"provider": "gitlab", "secret": {"name": "mnist-webhook", "key": "secret"},
                       "gitlab": {"base_url": "https://gitlab.lab.internal", "access_token": {"name": "gitlab-api"}}}
    return spec


def test_gitlab_token_is_checked():
    """argo-events v1.9.11 pkg/eventsources/sources/gitlab/start.go: Router.HandleRoute
    compares X-Gitlab-Token with router.secretToken only when it is set, and StartListening
    sets it from secretToken only inside `if gitlabEventSource.NeedToCreateHooks()`, which
    (pkg/apis/events/v1alpha1/eventsource_types.go GitlabEventSource.NeedToCreateHooks) needs
    accessToken and webhook.url. Without both, any request would start CI."""
    objects = generate(_gitlab_spec())
    source = find(objects, "EventSource", "mnist-gitlab")["spec"]["gitlab"]["push"]
    assert source["secretToken"] == {"name": "mnist-webhook", "key": "secret"}
    assert source["accessToken"] == {"name": "gitlab-api", "key": "token"}
    assert source["webhook"]["url"] == "https://hooks.lab.example.internal"
    assert source["webhook"]["endpoint"] == "/mnist"
    # AddProjectHookOptions fields set by reflection from `events` (unknown names fail).
    assert source["events"] == ["PushEvents", "TagPushEvents"]
    assert source["projects"] == ["ml/vision/mnist"]
    assert source["gitlabBaseURL"] == "https://gitlab.lab.internal"
    assert source["enableSSLVerification"] is True


def test_gitlab_sensor_skips_deletions():
    """GitLab marks a branch/tag deletion with after = 40 zeros; argo-events v1.9.11
    pkg/sensors/dependencies/filter.go filterData, JSONTypeString with comparator "!=":
    the filter passes when the regex does not match."""
    objects = generate(_gitlab_spec())
    sensor = find(objects, "Sensor", "mnist-ci")
    dependency = sensor["spec"]["dependencies"][0]
    assert dependency["eventSourceName"] == "mnist-gitlab" and dependency["eventName"] == "push"
    assert {"path": "body.after", "type": "string", "comparator": "!=", "value": ["^0{40}$"]} in \
        dependency["filters"]["data"]


def test_branch_globs_become_anchored_go_regexes():
    """argo-events filterData compiles each value with Go regexp and uses Match (unanchored):
    every generated pattern is anchored at both ends."""
    import re
    spec = example_spec()
    spec["repo"]["branches"] = ["main", "release/*", "feature/**"]
    sensor = find(generate(spec), "Sensor", "mnist-ci")
    refs = sensor["spec"]["dependencies"][0]["filters"]["data"][0]["value"]
    assert all(r.startswith("^") and r.endswith("$") for r in refs)

    def matches(ref):  # Go's `$` (no multi-line flag) is Python's `\Z`
        return any(re.search(r[:-1] + r"\Z", ref) for r in refs)
    assert matches("refs/heads/release/1.2") and not matches("refs/heads/release/1/2")
    assert matches("refs/heads/feature/a/b") and not matches("refs/heads/mainline")
    assert matches("refs/tags/v1") and not matches("refs/heads/main\n")
