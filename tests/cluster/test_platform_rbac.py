"""`kubectl auth can-i --as=system:serviceaccount:<ns>:<sa>` for the platform's own
ServiceAccounts on a real kube-apiserver (the cluster layer's control plane, RBAC on), with
the rendered RBAC applied (conftest.rendered_rbac):

- every in-cluster Job of the render: the Kubernetes calls its script makes, read from the
  script (SCRIPTS: file and function) and filled in with the Job's own configuration (its
  env), must be `yes` for the Job's ServiceAccount; a deny list (DENIED) must be `no`: other
  namespaces' Secrets, Secrets it does not name (the other Jobs' among them), listing or
  deleting Secrets, pods, escalate/bind, wildcards, nodes. A Job whose script has no model
  here fails the test: each new Job is read before it is trusted.
- the argo-events controller, installed namespace-scoped by roles/argo_events (issue 9:
  upstream's ClusterRoleBinding replaced by RoleBindings): what the v1.9.11 controller
  calls (ARGO_EVENTS_CONTROLLER, from pkg/reconciler/...) in its managed namespace and its
  own, and nothing in any other namespace.
Each check is what `kubectl auth can-i` asks (a SelfSubjectAccessReview as the account),
sent in process (`ask`; test_ask_agrees_with_kubectl_can_i holds it to kubectl's
answers). Runs after test_site_apply.py (conftest)."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

CORE_SECRETS, CONFIGMAPS = "secrets", "configmaps"


def get_create_patch(resource, namespace, name):
    """The calls of a get-then-create-or-merge-patch helper on one object."""
    return [("get", resource, namespace, name), ("create", resource, namespace, ""), ("patch", resource, namespace, name)]


def generate_secret_calls(env, _args):
    """plugins/module_utils/generate_secret.py (the generated_secret filter's Job): main
    -> ensure_source (client.get, client.create or client.merge_patch of the source Secret)
    and copy_to (the same on the copy in each `copies_to` namespace)."""
    config = json.loads(env["GEN_SECRET_CONFIG"])
    calls = get_create_patch(CORE_SECRETS, config["namespace"], config["name"])
    for namespace in config["copies_to"]:
        calls += get_create_patch(CORE_SECRETS, namespace, config["name"])
    return calls


def ca_export_calls(env, _args):
    """roles/cert_manager/files/ca_export.py: read_ca (client.get of the CA Secret) and
    export (client.get, client.create or client.merge_patch of the ConfigMap in each
    target namespace)."""
    config = json.loads(env["CA_EXPORT_CONFIG"])
    calls = [("get", CORE_SECRETS, config["namespace"], config["secret"])]
    for namespace in config["targets"]:
        calls += get_create_patch(CONFIGMAPS, namespace, config["configmap"])
    return calls


def registry_credentials_calls(env, args):
    """roles/harbor/files/registry_credentials.py: phase `prepare` (client.get of the
    Secret), phase `store` (client.create of it; never patched)."""
    namespace, name = env["SECRET_NAMESPACE"], env["SECRET_NAME"]
    return {"prepare": [("get", CORE_SECRETS, namespace, name)],
            "store": [("create", CORE_SECRETS, namespace, "")]}[args[0]]


def harbor_setup_calls(env, _args):
    """roles/harbor/files/harbor_setup.py: ensure_robot (client.get of the push Secret)
    and write_push_secret (client.get, client.create or client.merge_patch of it)."""
    config = json.loads(env["HARBOR_SETUP_CONFIG"])
    return get_create_patch(CORE_SECRETS, config["push_secret_namespace"], config["push_secret"])


def garage_setup_calls(env, _args):
    """roles/object_storage/files/garage_setup.py: main -> ensure_secret (k8s GET, POST or
    merge PATCH) of the Garage Secret and the S3 credentials Secret, and copy_secret (the
    same) of the credentials in each `copies_to` namespace."""
    config = json.loads(env["GARAGE_SETUP_CONFIG"])
    namespace = config["namespace"]
    calls = get_create_patch(CORE_SECRETS, namespace, config["garage_secret"])
    calls += get_create_patch(CORE_SECRETS, namespace, config["credentials_secret"])
    for target in config["copies_to"]:
        calls += get_create_patch(CORE_SECRETS, target, config["credentials_secret"])
    return calls


# The script a Job's container runs (the file name in its command) -> its calls.
SCRIPTS = {
    "generate.py": generate_secret_calls,
    "ca_export.py": ca_export_calls,
    "registry_credentials.py": registry_credentials_calls,
    "harbor_setup.py": harbor_setup_calls,
    "garage_setup.py": garage_setup_calls,
}
# Containers that make no Kubernetes call (their command, first word).
NO_API = ("sh",)


def job_calls(job):
    """(account, [(verb, resource, namespace, name)]) of one Job, from its containers."""
    spec = job["spec"]["template"]["spec"]
    account = spec.get("serviceAccountName", "default")
    calls = []
    for container in spec.get("initContainers", []) + spec["containers"]:
        command = container.get("command", []) + container.get("args", [])
        if command[0] in NO_API:
            continue
        script = next((c.rsplit("/", 1)[-1] for c in command if c.endswith(".py")), None)
        assert script in SCRIPTS, f"Job {job['metadata']['name']}: no model of the API calls of {command}: read it and add one"
        env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
        calls += SCRIPTS[script](env, command[command.index(next(c for c in command if c.endswith(".py"))) + 1:])
    return (job["metadata"]["namespace"], account), calls


def denied(account, calls, namespaces, others):
    """What `account` must not do, given its calls, the rendered namespaces and the other
    accounts' named objects."""
    home = account[0]
    touched = {ns for _verb, _resource, ns, _name in calls} | {home}
    mine = {(resource, ns, name) for _verb, resource, ns, name in calls if name}
    out = [("create", "pods", ns, "") for ns in touched]
    out += [("create", "pods/exec", home, ""), ("escalate", "roles.rbac.authorization.k8s.io", home, ""),
            ("bind", "clusterroles.rbac.authorization.k8s.io", "", ""),
            ("create", "rolebindings.rbac.authorization.k8s.io", home, ""), ("*", "*", home, ""),
            ("get", "nodes", "", ""), ("list", "nodes", "", ""), ("create", "serviceaccounts/token", home, "")]
    for ns in namespaces:
        out += [("list", CORE_SECRETS, ns, ""), ("watch", CORE_SECRETS, ns, ""), ("get", CORE_SECRETS, ns, ""),
                ("delete", CORE_SECRETS, ns, ""), ("get", CORE_SECRETS, ns, "not-one-of-ours")]
        if ns not in touched:
            out += [("create", resource, ns, "") for resource in {CORE_SECRETS} | {r for _v, r, _ns, _n in calls}]
    for resource, ns, name in others - mine:
        out += [("get", resource, ns, name), ("patch", resource, ns, name), ("update", resource, ns, name)]
    for resource, ns, name in mine:
        out += [("update", resource, ns, name), ("delete", resource, ns, name)]
    return out


def attributes(probe):
    """SelfSubjectAccessReview resourceAttributes of probe (verb, resource[.group][/subresource],
    namespace, name); namespace "" is cluster-scoped or every namespace."""
    verb, resource, namespace, name = probe
    resource, _slash, subresource = resource.partition("/")
    resource, _dot, group = resource.partition(".")
    return {"verb": verb, "resource": resource, "group": group, "subresource": subresource,
            "namespace": namespace, "name": name}


def can_i(kubectl, account, probe):
    """`kubectl auth can-i VERB RESOURCE[/NAME] [--subresource S] [-n NS] --as=<account>`."""
    verb, resource, namespace, name = probe
    resource, _slash, subresource = resource.partition("/")
    target = f"{resource}/{name}" if name else resource
    scope = (["-n", namespace] if namespace else ["-A"]) + ([f"--subresource={subresource}"] if subresource else [])
    result = kubectl("auth", "can-i", verb, target, *scope, f"--as=system:serviceaccount:{account[0]}:{account[1]}",
                     check=False)
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), (account, probe, result.stderr)
    return answer == "yes"


@pytest.fixture(scope="module")
def ask(control_plane):
    """ask([(account, probe)]) -> {(account, probe): allowed}: what `kubectl auth can-i
    --as=system:serviceaccount:<ns>:<sa>` asks (kubectl's cani.go: a SelfSubjectAccessReview
    sent as the impersonated account), in process: one kubectl per probe would take minutes
    for the hundreds here. test_ask_agrees_with_kubectl_can_i compares both."""
    from kubernetes import client, config

    apis = {}

    def one(account, probe):
        if account not in apis:
            api = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
            api.set_default_header("Impersonate-User", f"system:serviceaccount:{account[0]}:{account[1]}")
            apis[account] = client.AuthorizationV1Api(api)
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                  "spec": {"resourceAttributes": attributes(probe)}}
        return bool(apis[account].create_self_subject_access_review(review).status.allowed)

    return lambda questions: {q: one(*q) for q in questions}


def wrong(answers, expected):
    return sorted(f"{a[0]}:{a[1]} {' '.join(p)} -> {'yes' if answers[(a, p)] else 'no'}"
                  for (a, p), want in expected.items() if answers[(a, p)] != want)


@pytest.fixture(scope="module")
def jobs(rendered):
    return [obj for _source, obj in rendered if obj["kind"] == "Job"]


def test_each_job_may_make_exactly_the_calls_of_its_script(ask, rendered_rbac, namespaces, jobs):
    per_account = {}
    for job in jobs:
        account, calls = job_calls(job)
        per_account.setdefault(account, []).extend(calls)
    named = {account: {(r, ns, n) for _v, r, ns, n in calls if n} for account, calls in per_account.items()}
    expected = {}
    for account, calls in per_account.items():
        others = set().union(*(v for k, v in named.items() if k != account))
        for probe in denied(account, calls, namespaces, others):
            expected[(account, probe)] = False
        for probe in calls:
            expected[(account, probe)] = True
    assert {a for a in per_account if a[1] != "default"} >= {
        (o["metadata"]["namespace"], o["metadata"]["name"]) for o in rendered_rbac
        if o["kind"] == "ServiceAccount" and "generated-by" in json.dumps(o["metadata"].get("labels", {}))}
    answers = ask(list(expected))
    mismatches = wrong(answers, expected)
    assert not mismatches, "\n".join(mismatches)


def test_ask_agrees_with_kubectl_can_i(kubectl, ask, rendered_rbac):
    """`ask` answers what kubectl auth can-i answers, yes and no; and a call a script makes
    is refused to an account with no binding (the namespace's default account)."""
    call = ("get", CORE_SECRETS, "harbor", "harbor-admin")
    questions = [(("harbor", "gen-secret-harbor-admin"), call), (("harbor", "default"), call),
                 (("cert-manager", "ca-export"), ("create", CONFIGMAPS, "argocd", "")),
                 (("cert-manager", "ca-export"), ("create", "pods", "cert-manager", "")),
                 (("object-storage", "garage-setup"), ("patch", CORE_SECRETS, "argo", "s3-credentials")),
                 (("object-storage", "garage-setup"), ("list", CORE_SECRETS, "", ""))]
    answers = ask(questions)
    assert [answers[q] for q in questions] == [True, False, True, False, True, False]
    assert [can_i(kubectl, *q) for q in questions] == [answers[q] for q in questions]


# argo-events v1.9.11, what the controller calls (namespaced: its cache and clients work in
# the --managed-namespace only, pkg/reconciler/cmd/start.go Start, cache.Options
# DefaultNamespaces). (verb, resource, where): "managed" or "own" (its own namespace).
ARGO_EVENTS_CONTROLLER = [
    # pkg/reconciler/cmd/start.go Start: Watch(source.Kind(EventBus, EventSource, Sensor,
    # ConfigMap, StatefulSet, Service, Deployment)) -> informers list + watch.
    *[(verb, resource, "managed") for verb in ("list", "watch") for resource in (
        "eventbus.argoproj.io", "eventsources.argoproj.io", "sensors.argoproj.io", "configmaps", "services",
        "statefulsets.apps", "deployments.apps")],
    # pkg/reconciler/{eventbus,eventsource,sensor}/controller.go Reconcile: client.Get,
    # client.Update (finalizers), client.Status().Update.
    *[(verb, resource, "managed") for verb in ("get", "update") for resource in (
        "eventbus.argoproj.io", "eventsources.argoproj.io", "sensors.argoproj.io")],
    *[("update", resource, "managed") for resource in (
        "eventbus.argoproj.io/status", "eventsources.argoproj.io/status", "sensors.argoproj.io/status")],
    # pkg/reconciler/eventbus/installer/jetstream.go createService, createStatefulSet,
    # createConfigMap (Get, Create, Update), getSecret (kubeClient Secrets List),
    # createSecrets (Create, Delete), uninstallPVCs/getPVCs (List, Delete).
    *[(verb, resource, "managed") for verb in ("get", "create", "update") for resource in (
        "services", "statefulsets.apps", "configmaps")],
    ("list", "secrets", "managed"), ("create", "secrets", "managed"), ("delete", "secrets", "managed"),
    ("list", "persistentvolumeclaims", "managed"), ("delete", "persistentvolumeclaims", "managed"),
    # pkg/reconciler/{sensor,eventsource}/resource.go Reconcile: getDeployment (List),
    # client.Update / client.Create of the Deployment; eventsource getService (List),
    # client.Delete / client.Create of the Service.
    ("create", "deployments.apps", "managed"), ("update", "deployments.apps", "managed"),
    ("delete", "services", "managed"),
    # cmd/commands/controller.go --leader-election (default true) -> start.go
    # LeaderElectionID "argo-events-controller": controller-runtime's Lease lock in the
    # pod's own namespace (get, create, update).
    ("get", "leases.coordination.k8s.io", "own"), ("create", "leases.coordination.k8s.io", "own"),
    ("update", "leases.coordination.k8s.io", "own"),
]


def test_argo_events_controller_namespaced_rbac_covers_what_it_calls(ask, rendered_rbac, namespaces, rendered):
    deployment = next(o for source, o in rendered
                      if o["kind"] == "Deployment" and source.startswith("platform/argo_events/"))
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespaced" in args, "argo-events is no longer installed namespace-scoped: this table is for that"
    own = deployment["metadata"]["namespace"]
    where = {"own": own, "managed": args[args.index("--managed-namespace") + 1]}
    account = (own, deployment["spec"]["template"]["spec"]["serviceAccountName"])
    expected = {(account, (verb, resource, where[scope], "")): True for verb, resource, scope in ARGO_EVENTS_CONTROLLER}
    for ns in set(namespaces) - set(where.values()):
        for verb, resource in (("list", "sensors.argoproj.io"), ("list", "eventsources.argoproj.io"),
                               ("list", "secrets"), ("get", "secrets"), ("create", "deployments.apps"),
                               ("create", "pods"), ("list", "configmaps")):
            expected[(account, (verb, resource, ns, ""))] = False
    for probe in (("get", "nodes", "", ""), ("bind", "clusterroles.rbac.authorization.k8s.io", "", ""),
                  ("escalate", "roles.rbac.authorization.k8s.io", own, ""),
                  ("create", "clusterrolebindings.rbac.authorization.k8s.io", "", ""),
                  ("list", "sensors.argoproj.io", "", "")):  # cluster-wide list: what the namespaced install drops
        expected[(account, probe)] = False
    answers = ask(list(expected))
    mismatches = wrong(answers, expected)
    assert not mismatches, "\n".join(mismatches)


# argo-workflows v4.1.2, what the executor (argoexec init/wait, image of every workflow
# pod) calls with the pod's account, in the pod's namespace: cmd/argoexec/executor/init.go
# builds a WorkflowTaskResults client, workflow/executor/taskresult.go createTaskResult
# (Create) and patchTaskResult / patchTaskResultLabels (Patch). Its only Pods call,
# executor.go AddAnnotation (Patch), has no caller in v4.1.2; GetConfigMapKey serves HDFS
# artifacts only (none here). docs/workflow-rbac.md: the minimum for >= v3.4 is
# workflowtaskresults create + patch.
ARGO_EXECUTOR = [("create", "workflowtaskresults.argoproj.io"), ("patch", "workflowtaskresults.argoproj.io")]
ARGO_EXECUTOR_DENIED = [("get", "pods"), ("patch", "pods"), ("list", "pods"), ("create", "pods"), ("get", "secrets"),
                        ("list", "secrets"), ("get", "configmaps"), ("create", "workflows.argoproj.io"),
                        ("get", "workflowtaskresults.argoproj.io"), ("delete", "workflowtaskresults.argoproj.io")]


def test_workflow_executor_account_may_do_what_argoexec_calls(ask, rendered_rbac, namespaces):
    binding = next(o for o in rendered_rbac if o["kind"] == "RoleBinding" and o["metadata"]["name"] == "argo-workflow-executor")
    subject = binding["subjects"][0]
    account, home = (subject["namespace"], subject["name"]), subject["namespace"]
    expected = {(account, (verb, resource, home, "")): True for verb, resource in ARGO_EXECUTOR}
    expected.update({(account, (verb, resource, home, "")): False for verb, resource in ARGO_EXECUTOR_DENIED})
    expected.update({(account, (verb, resource, ns, "")): False for ns in namespaces if ns != home
                     for verb, resource in ARGO_EXECUTOR})
    answers = ask(list(expected))
    mismatches = wrong(answers, expected)
    assert not mismatches, "\n".join(mismatches)


# argo-workflows v4.1.2 argo-server with auth mode client: each call runs with the caller's
# token (auth.GetWfClient / auth.GetKubeClient), so the token accounts need what
# server/workflow/workflow_server.go calls for the UI's pages and buttons.
ARGO_UI_READ = [
    ("list", "workflows.argoproj.io"),  # ListWorkflows: "verify if we have permission to list Workflows"
    ("get", "workflows.argoproj.io"),  # GetWorkflow -> getWorkflow: Workflows().Get
    ("watch", "workflows.argoproj.io"),  # WatchWorkflows: wfIf.Watch
    ("watch", "events"),  # WatchEvents: CoreV1().Events().Watch
    # PodLogs/WorkflowLogs -> util/logs/workflow-logger.go WorkflowLogs: Pods List, Watch, GetLogs
    ("list", "pods"), ("watch", "pods"), ("get", "pods/log"),
]
ARGO_UI_SUBMIT = ARGO_UI_READ + [
    ("create", "workflows.argoproj.io"),  # CreateWorkflow, SubmitWorkflow, ResubmitWorkflow (util.SubmitWorkflow)
    ("get", "workflowtemplates.argoproj.io"), ("get", "cronworkflows.argoproj.io"),  # SubmitWorkflow: the template
    ("update", "workflows.argoproj.io"),  # SuspendWorkflow, ResumeWorkflow (workflow/util/util.go: wfIf.Update)
    ("patch", "workflows.argoproj.io"),  # DeleteWorkflow (finalizers), Stop/Terminate (util.patchShutdownStrategy)
    ("delete", "workflows.argoproj.io"),  # DeleteWorkflow
]
# Not granted on purpose (roles/argo_workflows: submit, resubmit, stop and delete only):
# RetryWorkflow deletes the failed pods with the caller's token (delete pods).
ARGO_UI_DENIED = [("get", "secrets"), ("list", "secrets"), ("get", "configmaps"), ("create", "pods"),
                  ("create", "pods/exec"), ("delete", "pods"), ("escalate", "roles.rbac.authorization.k8s.io"),
                  ("create", "rolebindings.rbac.authorization.k8s.io"), ("create", "serviceaccounts/token"),
                  ("*", "*"), ("delete", "workflowtemplates.argoproj.io"), ("create", "workflowtemplates.argoproj.io")]


@pytest.mark.parametrize("account, calls, extra_denied", [
    ("argo-ui-viewer", ARGO_UI_READ, [(verb, "workflows.argoproj.io") for verb in ("create", "update", "patch", "delete")]),
    ("argo-ui-submitter", ARGO_UI_SUBMIT, []),
])
def test_argo_ui_accounts_may_do_what_argo_server_calls_for_them(ask, rendered_rbac, namespaces, account, calls,
                                                                 extra_denied):
    subject = next(o for o in rendered_rbac if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == account)
    who, home = (subject["metadata"]["namespace"], account), subject["metadata"]["namespace"]
    expected = {(who, (verb, resource, home, "")): True for verb, resource in calls}
    expected.update({(who, (verb, resource, home, "")): False for verb, resource in ARGO_UI_DENIED + extra_denied})
    expected.update({(who, (verb, resource, ns, "")): False for ns in namespaces if ns != home
                     for verb, resource in calls})
    expected.update({(who, probe): False for probe in (("get", "nodes", "", ""), ("list", "workflows.argoproj.io", "", ""))})
    answers = ask(list(expected))
    mismatches = wrong(answers, expected)
    assert not mismatches, "\n".join(mismatches)
