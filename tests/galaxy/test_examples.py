"""Every module, filter and lookup's EXAMPLES run, as a user would paste them.

The EXAMPLES are what ansible-doc and the docsite show (ansible-core
``lib/ansible/cli/doc.py``, ``DocCLI.format_snippet``/``get_man_text`` print the
EXAMPLES string as-is), so each one is taken from the plugin the way ansible-doc reads it
(``ansible.utils.plugin_docs.get_docstring`` / the filter's YAML sidecar), parsed as a
task list, and run in one playbook on localhost with the collection's own defaults
(role ``researchops.mlops.mlops``) and the embedded inventory's variables. Each plugin's
tasks run in a block whose rescue records the failure, so one bad example names itself
and the others still run.

Examples that talk to a Kubernetes API server (a ``kubeconfig`` argument) cannot run
without one; their arguments are instead checked against the module's documented
options (names, ``required``, ``choices``), which ``ansible-test sanity``'s
validate-modules ties to the real argument spec.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible.parsing.plugin_docs import read_docstring

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
pytestmark = pytest.mark.slow

# Values a user supplies in their own play (the examples name them as inputs).
INPUTS = {
    "__upstream": [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "argocd-server"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "argocd-server"},
         "subjects": [{"kind": "ServiceAccount", "name": "argocd-server", "namespace": "argocd"}]},
    ],
    "__pipelines_platform": {
        "namespace": "mlops-pipelines", "argocd_namespace": "argocd", "argocd_project": "default",
        "registry_host": "harbor.lab.example.internal", "registry_project": "mlops",
        "registry_cache_project": "dockerhub", "registry_push_secret": "harbor-push",
        "s3_endpoint": "https://s3.lab.example.internal", "s3_region": "garage",
        "s3_credentials_secret": "s3-credentials", "datasets_bucket": "datasets",
        "models_bucket": "models", "ca_configmap": "researchops-ca",
        "webhook_host": "hooks.lab.example.internal",
    },
}
# Paths in examples that stand for the user's own: where they point on this machine.
# An nvidia-smi that fails, as on a host whose driver is not loaded: gpu_facts must then
# fall back to sysfs and warn, never fail.
PATH_SUBSTITUTIONS = {
    "/srv/upstream": os.environ.get("MLOPS_UPSTREAM_DIR", str(REPO.parent / "shared" / "upstream")),
    "/usr/local/nvidia/bin/nvidia-smi": "/bin/false",
}


def _plugin_examples():
    """(plugin type, name, examples text, documented options) of every plugin."""
    def of(kind):
        return [(kind, path.stem, read_docstring(str(path))["plainexamples"], None)
                for path in sorted((PLUGINS / kind).glob("*.py"))]
    return of("lookup") + _filter_examples() + of("modules")  # lookups feed filters feed modules


def _filter_examples():
    found = []
    for path in sorted((PLUGINS / "filter").glob("*.yml")):
        data = yaml.safe_load(path.read_text())
        found.append(("filter", path.stem, data.get("EXAMPLES"), None))
    for path in sorted((PLUGINS / "filter").glob("*.py")):
        if path.with_suffix(".yml").exists():
            continue
        source = path.read_text()
        if "DOCUMENTATION" not in source:
            continue  # a file of several filters, each documented in its .yml sidecar
        found.append(("filter", path.stem, read_docstring(str(path))["plainexamples"], None))
    return found


PLUGIN_EXAMPLES = _plugin_examples()
IDS = [f"{kind}/{name}" for kind, name, _examples, _options in PLUGIN_EXAMPLES]


def _module_options(name):
    """The module's documented options, doc fragments included, as ansible-doc gives them."""
    proc = subprocess.run([str(Path(sys.executable).with_name("ansible-doc")), "--json", "-t", "module",
                           f"researchops.mlops.{name}"], env=_env(), capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)[f"researchops.mlops.{name}"]["doc"]["options"]


def _env():
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"), ANSIBLE_NOCOLOR="1")
    env.setdefault("MLOPS_UPSTREAM_DIR", PATH_SUBSTITUTIONS["/srv/upstream"])
    return env


def _tasks(examples):
    for old, new in PATH_SUBSTITUTIONS.items():
        examples = examples.replace(old, new)
    tasks = yaml.safe_load(examples)
    assert isinstance(tasks, list) and tasks, "EXAMPLES is not a task list"
    return tasks


def _needs_api(task):
    return any(isinstance(args, dict) and "kubeconfig" in args for args in task.values())


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    """One playbook run of every runnable example; returns {plugin id: error or None}."""
    tmp = tmp_path_factory.mktemp("examples")
    for name in ("examples", "roles"):  # examples read repo files relative to the playbook
        (tmp / name).symlink_to(REPO / name)
    blocks = []
    for (kind, _name, examples, _options), plugin_id in zip(PLUGIN_EXAMPLES, IDS, strict=True):
        tasks = [t for t in _tasks(examples) if not _needs_api(t)]
        if not tasks:
            continue
        if kind == "modules" and not any(b["name"].startswith("Examples of modules/") for b in blocks):
            # The lookup's example gives upstream objects as published (no namespace); a
            # role namespaces them before the sink, and the k8s_validate example checks it.
            blocks.append({"name": "Examples of the user's namespaced objects", "block": [
                {"name": "Namespace the upstream Argo CD objects", "ansible.builtin.set_fact": {
                    "__argocd_objects": "{{ __argocd_objects | researchops.mlops.k8s_namespace(mlops_namespaces.argocd) }}"}}]})
        blocks.append({
            "name": f"Examples of {plugin_id}",
            "block": tasks,
            "rescue": [{"name": "Record the failure", "ansible.builtin.set_fact": {
                "__examples_failed": f"{{{{ __examples_failed | combine({{'{plugin_id}': ansible_failed_result.msg | default('failed')}}) }}}}"}}],
        })
    playbook = [{
        "name": "Run every plugin example",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": {**INPUTS, "__examples_failed": {}, "mlops_render_dir": str(tmp / "render")},
        "roles": ["researchops.mlops.mlops"],
        "tasks": blocks + [{"name": "Report", "ansible.builtin.copy": {
            "content": "{{{{ {{'failed': __examples_failed, 'ran': {}}} | to_json }}}}".format(json.dumps([b["name"][12:] for b in blocks])),
            "dest": str(tmp / "result.json"), "mode": "0644"}}],
    }]
    (tmp / "examples.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    proc = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "examples.yml",
                           "-i", str(REPO / "inventories" / "local")],
                          cwd=tmp, env=_env(), capture_output=True, text=True, check=False)
    assert (tmp / "result.json").exists(), proc.stdout[-4000:] + proc.stderr[-2000:]
    return json.loads((tmp / "result.json").read_text())


@pytest.mark.parametrize(("kind", "name", "examples", "options"), PLUGIN_EXAMPLES, ids=IDS)
def test_examples_are_tasks_using_the_plugin(kind, name, examples, options):
    assert examples and examples.strip(), f"{kind}/{name} has no EXAMPLES"
    text = yaml.safe_dump(_tasks(examples))
    # a multi-filter file (k8s.py) documents each filter in its own sidecar
    assert f"researchops.mlops.{name}" in text, f"no example of {kind}/{name} uses researchops.mlops.{name}"


@pytest.mark.parametrize(("kind", "name", "examples", "options"), PLUGIN_EXAMPLES, ids=IDS)
def test_examples_run(example_run, kind, name, examples, options):
    plugin_id = f"{kind}/{name}"
    tasks = _tasks(examples)
    runnable = [t for t in tasks if not _needs_api(t)]
    if runnable:
        assert plugin_id in example_run["ran"]
        assert plugin_id not in example_run["failed"], example_run["failed"].get(plugin_id)
    api_tasks = [t for t in tasks if _needs_api(t)]
    options = _module_options(name) if api_tasks else {}
    for task in api_tasks:
        args = task[f"researchops.mlops.{name}"]
        unknown = set(args) - set(options)
        assert not unknown, f"{plugin_id}: example uses undocumented options {unknown}"
        missing = {o for o, spec in options.items() if spec.get("required") and o not in args}
        assert not missing, f"{plugin_id}: example lacks required options {missing}"
        for option, value in args.items():
            choices = options[option].get("choices")
            if choices and isinstance(value, str) and "{{" not in value:
                assert value in choices, f"{plugin_id}: {option}={value} not in {choices}"
