"""The RuntimeClass `nvidia` has one owner: k3s.

k3s ships a packaged add-on `runtimes` (k3s-io/k3s `manifests/runtimes.yaml`: RuntimeClass
objects `nvidia`, `nvidia-experimental`, `crun`, the wasm runtimes, each with a handler of
the same name). `pkg/server/server.go` `stageFiles` writes the packaged manifests into
`<data-dir>/server/manifests` through `deploy.Stage(dataDir, templateVars,
controlConfig.Skips)` at every server start and `deploy.WatchFiles` applies them as the
Addon `runtimes`; only `--disable runtimes` (Skips/Disables in `pkg/cli/server/server.go`)
stops it. k3s-io/k3s#8700 (fixed by #8751) made the classes unconditional ("harmless for
these to be present even if some/all nodes do not have the matching runtime"). A
RuntimeClass `nvidia` of ours is then a second writer of the same object: the add-on
rewrites it at each k3s restart.
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

# Names and handlers of k3s-io/k3s manifests/runtimes.yaml (the NVIDIA ones).
K3S_RUNTIME_CLASSES = {"nvidia": "nvidia", "nvidia-experimental": "nvidia-experimental"}


def test_render_creates_no_runtime_class(rendered):
    owned = [(path, obj["metadata"]["name"]) for path, obj in rendered if obj["kind"] == "RuntimeClass"]
    assert owned == [], f"RuntimeClass objects k3s's add-on `runtimes` already owns: {owned}"


def test_device_plugin_uses_a_class_k3s_creates(rendered):
    daemonsets = [obj for _path, obj in rendered if obj["kind"] == "DaemonSet" and obj["metadata"]["name"] == "nvidia-device-plugin-daemonset"]
    assert len(daemonsets) == 1
    assert daemonsets[0]["spec"]["template"]["spec"]["runtimeClassName"] in K3S_RUNTIME_CLASSES
