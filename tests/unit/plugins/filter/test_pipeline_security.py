"""Pods the pipeline generates: restricted security, Kaniko isolated, user values literal
for the kubelet."""
from __future__ import annotations

import json

import pytest
from pipeline_fixtures import example_spec, images, platform

from ansible_collections.researchops.mlops.plugins.filter.pipeline import pipeline_objects

RESTRICTED_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def generate(spec=None):
    spec = spec or example_spec()
    return pipeline_objects([spec], platform=platform(), images=images())[spec["name"]]


def find(objects, kind, name):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def step_containers(wft):
    for tmpl in wft["spec"]["templates"]:
        for kind in ("container", "script"):
            if kind in tmpl:
                yield tmpl["name"], tmpl[kind]
        for container in tmpl.get("containerSet", {}).get("containers", []):
            yield f"{tmpl['name']}/{container['name']}", container


def assert_restricted_container(ctx, where):
    """Kubernetes Pod Security Standards, profile "restricted"
    (https://kubernetes.io/docs/concepts/security/pod-security-standards/): no privilege
    escalation, every capability dropped, non-root, RuntimeDefault seccomp."""
    assert ctx["allowPrivilegeEscalation"] is False, where
    assert ctx["capabilities"]["drop"] == ["ALL"], where
    assert ctx.get("runAsNonRoot", True) is True and ctx.get("runAsUser", 1) != 0, where
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, where


@pytest.mark.parametrize("gpu", [0, 1])
def test_every_step_is_restricted_but_kaniko(gpu):
    spec = example_spec()
    spec["ct"]["gpu"]["count"] = gpu
    objects = generate(spec)
    for stage in ("ci", "ct", "cd"):
        wft = find(objects, "WorkflowTemplate", f"mnist-{stage}")
        pod = wft["spec"]["securityContext"]
        assert pod.items() >= RESTRICTED_POD.items() and pod["runAsUser"] != 0
        for where, container in step_containers(wft):
            if container["image"] == images()["kaniko"]:
                continue
            assert_restricted_container(container["securityContext"], f"{stage}: {where}")


def test_kaniko_is_root_but_isolated():
    """Kaniko must run as root (it unpacks the base image over its own filesystem). It gets
    no credentials and no push: the registry Secret is mounted only into crane containers
    of the same pod, which the Dockerfile's RUN steps cannot see."""
    wft = find(generate(), "WorkflowTemplate", "mnist-ci")
    kanikos = [(where, c) for where, c in step_containers(wft) if c["image"] == images()["kaniko"]]
    assert len(kanikos) == 3
    for where, kaniko in kanikos:
        ctx = kaniko["securityContext"]
        assert ctx["runAsUser"] == 0 and ctx["allowPrivilegeEscalation"] is False
        assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
        assert "privileged" not in ctx
        assert {m["name"] for m in kaniko["volumeMounts"]} == {"workspace", "platform-ca"}, where
        assert "--no-push" in kaniko["args"] and not kaniko.get("env") and not kaniko.get("envFrom")
        assert not any(arg.startswith("--cache-repo") for arg in kaniko["args"])
        limits = kaniko["resources"]["limits"]
        assert limits["memory"] == "4Gi" and limits["ephemeral-storage"] == "20Gi"


def test_eventsource_and_sensor_pods_are_restricted():
    objects = generate()
    for kind, name in (("EventSource", "mnist-github"), ("Sensor", "mnist-ci")):
        template = find(objects, kind, name)["spec"]["template"]
        assert template["securityContext"].items() >= RESTRICTED_POD.items()
        assert_restricted_container(template["container"]["securityContext"], name)


def test_serving_deployment_is_patched_restricted():
    app = find(generate(), "Application", "mnist-serving")
    patches = app["spec"]["source"]["kustomize"]["patches"]
    smp = json.loads(patches[0]["patch"])
    pod = smp["spec"]["template"]["spec"]
    assert pod["securityContext"].items() >= RESTRICTED_POD.items()
    assert_restricted_container(pod["initContainers"][0]["securityContext"], "fetch-model")
    ops = json.loads(patches[1]["patch"])
    assert ops[0]["op"] == "add" and ops[0]["path"] == "/spec/template/spec/containers/0/securityContext"
    assert_restricted_container(ops[0]["value"], "serving container")


def kubelet_expand(text, env):
    """The kubelet's expansion of env values, command and args, as the Kubernetes API
    documents it (io.k8s.api.core.v1.EnvVar.value and Container.args in the pinned
    argo-workflows v4.1.2 schema.json; implementation: kubernetes
    third_party/forked/golang/expansion/expand.go Expand): $(VAR) is replaced when VAR is
    defined, '$$' becomes '$', anything else is kept."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            following = text[i + 1]
            if following == "$":
                out.append("$")
                i += 2
                continue
            if following == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    out.append(env.get(text[i + 2:end], text[i:end + 1]))
                    i = end + 1
                    continue
            out.append(text[i:i + 2])
            i += 2
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def test_kubelet_expansion_port_follows_the_documented_rules(upstream):
    schema = json.loads((upstream / "argo-workflows/v4.1.2/schema.json").read_text(encoding="utf-8"))
    doc = schema["definitions"]["io.k8s.api.core.v1.EnvVar"]["properties"]["value"]["description"]
    assert "Double $$ are reduced to a single $" in doc and "will be unchanged" in doc
    env = {"HOME": "/root"}
    assert kubelet_expand("$(HOME)/x", env) == "/root/x"
    assert kubelet_expand("$(NOPE)", env) == "$(NOPE)"
    assert kubelet_expand("$$(HOME)", env) == "$(HOME)"
    assert kubelet_expand("a$b$", env) == "a$b$"


VALUES = ["$(HOME)", "$$", "cost $5", "$$(HOME)", "${HOME}", "end$", "$($(HOME))", "plain"]


@pytest.mark.parametrize("value", VALUES)
def test_user_values_reach_the_process_literally(value):
    """Build args, ct.env values and the smoke body are escaped so that after the kubelet's
    expansion the process sees exactly what the spec says."""
    env = {"HOME": "/root", "OUTPUTS": "/tmp/outputs"}
    spec = example_spec()
    spec["ci"]["build_args"] = [{"name": "V", "value": value}]
    spec["ct"]["env"] = [{"name": "V", "value": value}]
    spec["cd"]["smoke"]["body"] = {"v": value}
    objects = generate(spec)
    ci = find(objects, "WorkflowTemplate", "mnist-ci")
    build = dict(step_containers(ci))["build-train/build"]
    arg = next(a for a in build["args"] if a.startswith("--build-arg=V="))
    assert kubelet_expand(arg, env) == f"--build-arg=V={value}"
    ct = find(objects, "WorkflowTemplate", "mnist-ct")
    for where, container in step_containers(ct):
        for item in container.get("env", []):
            if item["name"] == "V":
                assert kubelet_expand(item["value"], env) == value, where
    smoke = dict(step_containers(find(objects, "WorkflowTemplate", "mnist-cd")))["smoke"]
    body = next(e["value"] for e in smoke["env"] if e["name"] == "SMOKE_BODY")
    assert json.loads(kubelet_expand(body, env)) == {"v": value}
