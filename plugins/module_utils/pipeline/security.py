# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Security contexts of every pod the pipeline generates: the Kubernetes "restricted" Pod
Security Standard (non-root, no privilege escalation, every capability dropped,
RuntimeDefault seccomp), except the one Kaniko container, which must run as root."""

from __future__ import annotations

# The conventional "nonroot" user of distroless images; workspace volumes are group-owned
# by it (fsGroup) so that every step can write them.
NONROOT_UID = 65532

SECCOMP = {"type": "RuntimeDefault"}


def pod_security():
    return {"runAsNonRoot": True, "runAsUser": NONROOT_UID, "runAsGroup": NONROOT_UID,
            "fsGroup": NONROOT_UID, "seccompProfile": dict(SECCOMP)}


def container_security():
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True, "seccompProfile": dict(SECCOMP)}


def kaniko_security():
    """Kaniko unpacks the base image over its own root filesystem and runs the RUN steps
    there as root: it keeps root and the default capabilities (chown, setuid ... of the
    files it unpacks) but no privilege escalation, RuntimeDefault seccomp, no credentials
    and no writable host path."""
    return {"runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False, "allowPrivilegeEscalation": False,
            "seccompProfile": dict(SECCOMP)}
