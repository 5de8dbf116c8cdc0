# Copyright: (c) 2026, ResearchOps developers
# Apache License 2.0 (see LICENSE)
"""Checks of the researchops.mlops.preflight action, run on the controller in-process.

Every check reads the values the roles will actually see: role defaults (and the role's
vars/main.yml), overridden by the inventory, templated in the context of the host the
role runs on. Nothing here touches a host. Each problem names the area (host, group or
platform part), the variable, the value and the fix; all problems are collected and
reported at once.

Rules taken from upstream (cited next to each check):
- DNS-1123 label/subdomain: kubernetes apimachinery pkg/util/validation/validation.go
  (IsDNS1123Label, IsDNS1123Subdomain); node names are subdomains.
- S3 bucket names: AWS "Bucket naming rules" (general purpose buckets); Garage
  src/api/common/helpers.rs (is_valid_bucket_name) enforces the same subset.
- Harbor project names: goharbor/harbor src/server/v2.0/handler/project.go
  (validateProjectName -> ^[a-z0-9]+(?:[._-][a-z0-9]+)*$, 1-255 characters).
- Harbor admin password: goharbor/harbor src/common/utils/passwords (8-128 characters
  with an upper-case letter, a lower-case letter and a digit).
- k3s release names vX.Y.Z+k3sN: k3s-io/k3s releases; channel names (latest, stable)
  are not releases: k3s-io/k3s channel.yaml.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections import OrderedDict
from collections.abc import Mapping

from ansible.errors import AnsibleError, AnsibleUndefinedVariable
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

# The name patterns are the pipeline spec's and the platform filters' (module_utils/names.py).
from ansible_collections.researchops.mlops.plugins.module_utils.names import DNS1123_LABEL, DNS1123_SUBDOMAIN, HARBOR_PROJECT, S3_BUCKET
from ansible_collections.researchops.mlops.plugins.module_utils.pipeline.spec import to_plain as _plain

K3S_RELEASE = re.compile(r"^v(\d+)\.(\d+)\.(\d+)\+k3s(\d+)\Z")
SHA256 = re.compile(r"^[0-9a-f]{64}\Z")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z")
UNDEFINED_NAME = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)' is undefined")

# ansible_facts.architecture -> k3s architecture (roles/k3s/vars/main.yml __k3s_arch_map).
K3S_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm", "armv8l": "arm"}

# Variables that hold secrets: their values are never printed.
SECRET_VARIABLES = (
    "k3s_token",
    "k3s_registry_harbor_password",
    "harbor_admin_password",
    "cert_manager_cloudflare_api_token",
    "object_storage_external_access_key_id",
    "object_storage_external_secret_access_key",
    "argo_workflows_sso_client_secret",
)

# Roles per phase of site.yml, and the variable that switches each off.
CONTROLLER_ROLES = (
    "gpu_labels", "nvidia_device_plugin", "namespaces", "argocd", "storage", "cert_manager", "ingress",
    "postgresql", "harbor", "object_storage", "argo_workflows", "argo_events", "pipelines",
)
TLS_ISSUER_VARIABLES = (
    "argocd_tls_issuer", "ingress_tls_issuer", "harbor_tls_issuer", "object_storage_tls_issuer",
    "argo_workflows_tls_issuer", "pipelines_webhook_tls_issuer",
)
ENABLED = {role: f"{role}_enabled" for role in CONTROLLER_ROLES + ("docker",)}

_MISSING = object()
# Parsed role files, shared by every check run of this process: {(path, mtime): data}.
_FILES = {}


class Problems:
    """Problems grouped by area; one line each: variable (value): what is wrong. Fix."""

    def __init__(self):
        self._areas = OrderedDict()

    def add(self, area, variable, value, message, secret=False):
        shown = "(value hidden)" if secret else _short(value)
        line = f"{variable} = {shown}: {message}" if value is not _MISSING else f"{variable}: {message}"
        self._areas.setdefault(area, [])
        if line not in self._areas[area]:
            self._areas[area].append(line)

    def __len__(self):
        return sum(len(lines) for lines in self._merged().values())

    def _merged(self):
        """{title: lines}; hosts with the same problems share one block."""
        groups = OrderedDict()
        for area, lines in self._areas.items():
            key = tuple(lines) if area.startswith("host ") else (area,)
            groups.setdefault(key, []).append(area)
        merged = OrderedDict()
        for areas in groups.values():
            title = "hosts " + ", ".join(a[len("host "):] for a in areas) if len(areas) > 1 else areas[0]
            merged[title] = self._areas[areas[0]]
        return merged

    def as_dict(self):
        return {area: list(lines) for area, lines in self._areas.items()}

    def report(self):
        out = [f"Preflight found {len(self)} problem(s); nothing was changed on any host."]
        for title, lines in self._merged().items():
            out.append(f"[{title}]")
            out.extend(f"  - {line}" for line in lines)
        return "\n".join(out)


def _short(value, limit=120):
    text = repr(value) if not isinstance(value, str) else value
    if isinstance(value, str):
        text = f"'{value}'"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Scope:
    """The variables one role set sees on one host: defaults < inventory < role vars."""

    def __init__(self, context, host, raw, layers):
        merged = {}
        for defaults, _vars in layers:
            merged.update(defaults)
        merged.update(raw)
        for _defaults, role_vars in layers:
            merged.update(role_vars)
        merged["hostvars"] = context.hostvars
        self.host = host
        self.raw = raw
        self._vars = merged
        self._templar = context.templar.copy_with_new_env(available_variables=merged)
        self._cache = {}

    def defined(self, name):
        return name in self._vars

    def set_by_inventory(self, name):
        return name in self.raw

    def resolve(self, name):
        """(value, undefined name or None); value is _MISSING when unknown."""
        if name in self._cache:
            return self._cache[name]
        if name not in self._vars:
            result = (_MISSING, name)
        else:
            try:
                result = (_plain(self._templar.template(self._vars[name])), None)
            except AnsibleUndefinedVariable as e:
                found = UNDEFINED_NAME.search(str(e))
                result = (_MISSING, found.group(1) if found else "!" + str(getattr(e, "message", e)).splitlines()[0])
            except AnsibleError as e:
                result = (_MISSING, "!" + str(getattr(e, "message", e)).splitlines()[0])
        self._cache[name] = result
        return result

    def get(self, name, default=None):
        value, _undefined = self.resolve(name)
        return default if value is _MISSING else value


class Context:
    """Everything the checks read: inventory groups, host variables, role files."""

    def __init__(self, loader, templar, hostvars, groups, controller_vars, roles_dir, options):
        self.loader = loader
        self.templar = templar
        self.hostvars = hostvars
        self.groups = {k: list(v) for k, v in groups.items()}
        self.controller_vars = controller_vars
        self.roles_dir = roles_dir
        self.options = options
        self._role_files = {}
        self._scopes = {}
        self._raw = {}

    def group(self, name):
        return self.groups.get(name, [])

    def _load(self, path, trusted=True):
        key = (path, os.stat(path).st_mtime_ns, trusted)
        if key not in _FILES:
            _FILES[key] = self.loader.load_from_file(path, cache="none", trusted_as_template=trusted) or {}
        return _FILES[key]

    def _load_dir(self, base):
        data = {}
        if os.path.isfile(base + ".yml"):
            data.update(self._load(base + ".yml"))
        elif os.path.isdir(base):
            for name in sorted(os.listdir(base)):
                if name.endswith((".yml", ".yaml")):
                    data.update(self._load(os.path.join(base, name)))
        return data

    def raw(self, host):
        if host not in self._raw:
            self._raw[host] = self.hostvars.raw_get(host)
        return self._raw[host]

    def role(self, name):
        """(defaults, vars/main, argument spec options of entry point main) of a role."""
        if name not in self._role_files:
            root = os.path.join(self.roles_dir, name)
            spec_file = os.path.join(root, "meta", "argument_specs.yml")
            spec = {}
            if os.path.isfile(spec_file):
                spec = self._load(spec_file, trusted=False).get("argument_specs", {}).get("main", {})
            self._role_files[name] = (
                self._load_dir(os.path.join(root, "defaults", "main")),
                self._load_dir(os.path.join(root, "vars", "main")),
                dict(spec.get("options") or {}),
            )
        return self._role_files[name]

    def scope(self, host, roles):
        key = (host, tuple(roles))
        if key not in self._scopes:
            raw = self.controller_vars if host is None else self.raw(host)
            layers = [self.role(r)[:2] for r in ("mlops",) + tuple(roles)]
            self._scopes[key] = Scope(self, host, raw, layers)
        return self._scopes[key]

    def controller(self):
        return self.scope(None, CONTROLLER_ROLES + ("cert_manager", "k8s_sink"))


# --------------------------------------------------------------------------- helpers
def _is_ip(text):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _address_problem(text, strict=True):
    """Why a bare host name/address is not usable, or None. Not strict (ansible_host):
    any name SSH might resolve is accepted; strict names must be DNS names (TLS SANs, URLs)."""
    if not isinstance(text, str) or not text:
        return "must be a host name or an IP address"
    if "://" in text:
        return "must be a bare host name or address, without a scheme (drop 'https://')"
    if text.startswith("["):
        return "IPv6 addresses are written without brackets (the roles add them where a URL needs them)"
    if "/" in text:
        return "must be one address, not a network (drop the /prefix length)"
    if ":" in text:
        if _is_ip(text.split("%")[0]):
            return None
        if text.count(":") == 1:
            return "must not carry a port (set ansible_port or k3s_api_port instead)"
        return "is not a valid IPv6 address"
    if re.match(r"^[0-9.]+$", text):
        return None if _is_ip(text) else "is not a valid IPv4 address"
    if not strict:
        return "is not a valid host name (it contains white space)" if re.search(r"\s", text) else None
    return None if DNS1123_SUBDOMAIN.match(text.lower()) and len(text) <= 253 else "is not a valid host name"


def _image_problem(ref):
    if not isinstance(ref, str) or not ref:
        return "must be an image reference"
    name, _sep, digest = ref.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    if digest:
        return None if re.match(r"^sha256:[0-9a-f]{64}$", digest) else "has a malformed digest (expected @sha256:<64 hex>)"
    if not tag:
        return "has no tag: pin a version tag (and optionally @sha256:<digest>)"
    if tag == "latest":
        return "uses the moving tag 'latest': pin a version tag"
    return None


def _version_key(text):
    found = K3S_RELEASE.match(text or "")
    return tuple(int(x) for x in found.groups()) if found else None


# --------------------------------------------------------------------------- checks
def check_removed(ctx, problems):
    removed = ctx.options.get("removed_variables") or {}
    for host_name in [None] + _all_hosts(ctx):
        raw = ctx.controller_vars if host_name is None else ctx.raw(host_name)
        for old, new in removed.items():
            if old in raw:
                area = "platform" if host_name is None else f"host {host_name}"
                problems.add(area, old, raw[old], f"was removed: set {new} instead in your inventory's group_vars.")


def _all_hosts(ctx):
    seen = []
    for group in ("k3s_cluster", "k3s_servers", "k3s_agents", "gpu_nodes", "nfs_servers"):
        for host in ctx.group(group):
            if host not in seen:
                seen.append(host)
    return seen


def check_groups(ctx, problems):
    servers, agents = ctx.group("k3s_servers"), ctx.group("k3s_agents")
    cluster, gpu = ctx.group("k3s_cluster"), ctx.group("gpu_nodes")
    if not (servers or agents or cluster or gpu):
        return
    if not servers:
        problems.add("group k3s_servers", "k3s_servers", [], "the inventory has nodes but no hosts in group k3s_servers. "
                     "Put the first k3s server (or three, for HA) under k3s_servers, agents under k3s_agents, and make "
                     "both children of k3s_cluster (see inventories/lab/hosts.yml).")
    for host in cluster:
        if host not in servers and host not in agents:
            problems.add(f"host {host}", "k3s_cluster", host, "is directly under k3s_cluster but in neither k3s_servers "
                         "nor k3s_agents, so no play installs k3s on it. Move it under k3s_servers or k3s_agents.")
    for host in servers:
        if host in agents:
            problems.add(f"host {host}", "k3s_servers/k3s_agents", host, "is in both k3s_servers and k3s_agents: "
                         "a node is a server or an agent. Remove it from one of the groups.")
    for host in servers + agents:
        if host not in cluster:
            problems.add(f"host {host}", "k3s_cluster", host, "is in k3s_servers/k3s_agents but not in k3s_cluster: "
                         "make k3s_servers and k3s_agents children of k3s_cluster.")
    for host in gpu:
        if host not in cluster:
            problems.add(f"host {host}", "gpu_nodes", host, "is in gpu_nodes but not a k3s node: GPU hosts must also be "
                         "in k3s_servers or k3s_agents (under k3s_cluster).")
    if not servers:
        return
    etcd = {h: ctx.scope(h, ("k3s", "k3s_server")).get("k3s_server_embedded_etcd") for h in servers}
    with_etcd = [h for h, on in etcd.items() if _truthy(on)]
    without = [h for h, on in etcd.items() if not _truthy(on)]
    if with_etcd and len(servers) % 2 == 0:
        problems.add("group k3s_servers", "k3s_servers", servers, f"{len(servers)} servers with embedded etcd cannot keep "
                     "quorum after a failure: use 1 server or an odd number (3, 5); add or remove one.")
    if len(without) > 1:
        external = [h for h in without if "datastore-endpoint" in (ctx.scope(h, ("k3s", "k3s_server")).get(
            "k3s_server_extra_config") or {})]
        if len(external) != len(without):
            problems.add("group k3s_servers", "k3s_server_embedded_etcd", False, f"servers {', '.join(without)} run "
                         "without embedded etcd and without a shared datastore-endpoint: each would form its own cluster. "
                         "Set k3s_server_embedded_etcd: true (or a common datastore-endpoint in k3s_server_extra_config).")
    if with_etcd and without and len(servers) > 1:
        problems.add("group k3s_servers", "k3s_server_embedded_etcd", etcd, "is set differently on the servers: "
                     "set it once for the whole k3s_servers group.")


def _truthy(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _node_roles(ctx, host):
    roles = ["k3s"]
    if host in ctx.group("k3s_servers"):
        roles.append("k3s_server")
    elif host in ctx.group("k3s_agents"):
        roles.append("k3s_agent")
    return tuple(roles)


def check_names_and_addresses(ctx, problems):
    cluster = ctx.group("k3s_cluster")
    names, addresses = {}, {}
    for host in cluster:
        scope = ctx.scope(host, _node_roles(ctx, host))
        name = scope.get("k3s_node_name", host)
        if not isinstance(name, str) or len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
            problems.add(f"host {host}", "k3s_node_name", name, "is not a valid Kubernetes node name (DNS-1123: "
                         "lower-case letters, digits, '-' and '.', starting and ending alphanumeric, at most 253). "
                         f"Set k3s_node_name: {_suggest_name(name)!r} for this host or rename it.")
        names.setdefault(str(name).lower(), []).append(host)
        for var in ("ansible_host", "k3s_node_ip"):
            value = scope.raw.get(var) if var == "ansible_host" else scope.get(var, "")
            if var == "ansible_host" and value is not None:
                value = scope.get(var)
            if not value:
                continue
            parts = [p.strip() for p in str(value).split(",")] if var == "k3s_node_ip" else [str(value)]
            for part in parts:
                why = _address_problem(part, strict=var != "ansible_host")
                if var == "k3s_node_ip" and why is None and not _is_ip(part):
                    why = "must be an IP address (k3s --node-ip), not a host name"
                if why:
                    problems.add(f"host {host}", var, value, why + ".")
                elif var == "ansible_host":
                    # Hosts behind one address on different SSH ports (NAT, VMs) are distinct.
                    port = scope.get("ansible_port", 22)
                    addresses.setdefault((part.lower(), str(port)), set()).add(host)
                elif _is_ip(part):
                    addresses.setdefault((part.lower(), "node-ip"), set()).add(host)
    for name, hosts in names.items():
        if len(hosts) > 1:
            problems.add("group k3s_cluster", "k3s_node_name", name, f"is the node name of {', '.join(hosts)}: node names "
                         "must be unique. Rename the hosts or set k3s_node_name per host.")
    for (address, _port), hosts in addresses.items():
        if len(hosts) > 1:
            problems.add("group k3s_cluster", "ansible_host/k3s_node_ip", address, f"is the address of "
                         f"{', '.join(sorted(hosts))}: every node needs its own address. Fix the host's ansible_host.")
    for host in ctx.group("nfs_servers"):
        value = ctx.raw(host).get("ansible_host")
        if value is not None:
            value = ctx.scope(host, ()).get("ansible_host")
            why = _address_problem(str(value), strict=False)
            if why:
                problems.add(f"host {host}", "ansible_host", value, why + ".")
    if ctx.group("k3s_servers"):
        first = ctx.group("k3s_servers")[0]
        scope = ctx.scope(first, ("k3s", "k3s_server"))
        value, undefined = scope.resolve("k3s_api_endpoint")
        if value is not _MISSING:
            why = _address_problem(value)
            if why:
                problems.add("group k3s_servers", "k3s_api_endpoint", value, why + ".")
        port = scope.get("k3s_api_port")
        if not isinstance(port, int) or not 0 < port < 65536:
            problems.add("group k3s_servers", "k3s_api_port", port, "must be a TCP port (1-65535), e.g. 6443.")


def check_nfs_clients(ctx, problems):
    """The storage export (first export of the first nfs_servers host, the one the NFS
    StorageClass mounts) must admit every k3s node, or every volume mount fails."""
    servers = ctx.group("nfs_servers")
    if not servers:
        return
    exports = ctx.scope(servers[0], ("nfs_server",)).get("nfs_server_exports")
    if not isinstance(exports, list) or not exports or not isinstance(exports[0], Mapping):
        return  # the argument spec check reports the shape
    clients = exports[0].get("clients") or []
    if not isinstance(clients, list) or any(not isinstance(c, str) or not _is_network(c) for c in clients):
        return  # host names and wildcards other than '*': cannot be decided here
    networks = [ipaddress.ip_network("0.0.0.0/0" if c == "*" else c, strict=False) for c in clients]
    if any(n.prefixlen == 0 for n in networks):
        return
    outside = []
    for host in ctx.group("k3s_cluster"):
        scope = ctx.scope(host, _node_roles(ctx, host))
        address = scope.get("k3s_node_ip") or (scope.get("ansible_host") if "ansible_host" in scope.raw else None)
        address = str(address).split(",", maxsplit=1)[0].strip() if address else ""
        if _is_ip(address) and not any(ipaddress.ip_address(address) in n for n in networks
                                       if n.version == ipaddress.ip_address(address).version):
            outside.append(f"{host} ({address})")
    if outside:
        problems.add(f"host {servers[0]}", "nfs_server_exports[0].clients", clients, "does not admit the k3s nodes "
                     f"{', '.join(outside)}: their NFS volume mounts would be refused. Add their network to the "
                     "export's clients.")


def _is_network(text):
    if text == "*":
        return True
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _suggest_name(name):
    text = re.sub(r"[^a-z0-9.-]+", "-", str(name).lower()).strip("-.")
    return text or "node-1"


def check_versions(ctx, problems):
    scope = ctx.controller()
    version = scope.get("mlops_k3s_version")
    checksums = scope.get("mlops_k3s_checksums") or {}
    if not isinstance(version, str) or version in ("latest", "stable", "testing") or _version_key(version) is None:
        problems.add("versions", "mlops_k3s_version", version, "must be a pinned k3s release like v1.34.1+k3s1, not a "
                     "channel or a partial version. Pick a release from github.com/k3s-io/k3s/releases and add its "
                     "sha256 to mlops_k3s_checksums.")
    elif not isinstance(checksums, Mapping) or version not in checksums:
        problems.add("versions", "mlops_k3s_version", version, "has no entry in mlops_k3s_checksums (pinned: "
                     f"{', '.join(sorted(checksums)) if isinstance(checksums, Mapping) else 'none'}). Add "
                     f"mlops_k3s_checksums['{version}'].binary.<arch> from the release's sha256sum-<arch>.txt.")
    if isinstance(checksums, Mapping):
        for ver, kinds in checksums.items():
            for kind, arches in (kinds or {}).items() if isinstance(kinds, Mapping) else []:
                for arch, digest in (arches or {}).items() if isinstance(arches, Mapping) else []:
                    if not isinstance(digest, str) or not SHA256.match(digest):
                        problems.add("versions", f"mlops_k3s_checksums['{ver}'].{kind}.{arch}", digest,
                                     "is not a sha256 (64 lower-case hex digits): copy it from sha256sum-<arch>.txt.")
    for name in sorted(k for k in scope._vars if k.startswith("mlops_") and k.endswith(("_image", "_images"))):
        value = scope.get(name)
        items = value.items() if isinstance(value, Mapping) else [(None, value)]
        for key, ref in items:
            why = _image_problem(ref)
            if why:
                problems.add("versions", f"{name}.{key}" if key else name, ref, why + ".")
    for name in sorted(k for k in scope._vars if k.startswith("mlops_") and k.endswith("_chart")):
        chart = scope.get(name) or {}
        version_value = chart.get("version") if isinstance(chart, Mapping) else None
        if not isinstance(version_value, str) or not re.match(r"^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$", version_value):
            problems.add("versions", f"{name}.version", version_value, "must be one exact chart version (no 'latest', "
                         "ranges or wildcards).")
    for name in sorted(k for k in scope._vars if k.startswith("mlops_") and k.endswith("_version")):
        value = scope.get(name)
        if isinstance(value, str) and value.strip().lower() in ("latest", "stable", "master", "main", ""):
            problems.add("versions", name, value, "must be a pinned release, not a moving name.")


def check_cluster_version(ctx, problems, running):
    """running: kubelet versions of the reachable cluster's nodes ({node: 'v1.34.1+k3s1'})."""
    target = ctx.controller().get("mlops_k3s_version")
    target_key = _version_key(target)
    if target_key is None:
        return
    for node, version in sorted(running.items()):
        key = _version_key(version)
        if key is not None and key > target_key:
            problems.add("versions", "mlops_k3s_version", target, f"is older than {version} running on node {node}: k3s "
                         "does not support downgrades. Set mlops_k3s_version to the running release or newer.")


def check_secrets(ctx, problems):
    known = {str(v) for v in ctx.options.get("known_secrets") or []}
    token_required = _truthy(ctx.options.get("k3s_token_required", True))
    servers, cluster = ctx.group("k3s_servers"), ctx.group("k3s_cluster")
    tokens = {}
    for host in cluster:
        scope = ctx.scope(host, _node_roles(ctx, host))
        value, undefined = scope.resolve("k3s_token")
        if value is _MISSING:
            if undefined and undefined != "k3s_token":
                problems.add(f"host {host}", "k3s_token", _MISSING, f"uses {undefined}, which is not defined. Put "
                             f"{undefined} in your inventory's group_vars/all/vault.yml (copy vault.yml.example, "
                             "fill in `openssl rand -hex 32`, encrypt it with ansible-vault).")
            elif token_required:
                problems.add(f"host {host}", "k3s_token", _MISSING, "is not set. Set k3s_token: \"{{ vault_k3s_token }}\" "
                             "and vault_k3s_token in group_vars/all/vault.yml (see vault.yml.example), or set "
                             "preflight_k3s_token_required: false to let the first server generate one.")
            continue
        tokens[host] = value
        if not value:
            if token_required:
                problems.add(f"host {host}", "k3s_token", "", "is empty. Set vault_k3s_token in group_vars/all/vault.yml "
                             "(`openssl rand -hex 32`), or set preflight_k3s_token_required: false to let the first "
                             "server generate one.")
            continue
        _secret_value_problems(problems, f"host {host}", "k3s_token", str(value), known, min_length=32)
    if len({str(v) for v in tokens.values()}) > 1 and servers:
        problems.add("group k3s_cluster", "k3s_token", _MISSING, "differs between nodes "
                     f"({', '.join(sorted(tokens))}): every server and agent must share one token. Set it once, in "
                     "group_vars/all.", )
    scope = ctx.controller()
    for name in SECRET_VARIABLES[1:]:
        value = scope.get(name)
        if isinstance(value, str) and value:
            _secret_value_problems(problems, "secrets", name, value, known)
    password = scope.get("harbor_admin_password")
    if isinstance(password, str) and password and not (
            8 <= len(password) <= 128 and re.search(r"[A-Z]", password) and re.search(r"[a-z]", password)
            and re.search(r"[0-9]", password)):
        problems.add("secrets", "harbor_admin_password", password, "Harbor refuses it: it needs 8-128 characters with "
                     "an upper-case letter, a lower-case letter and a digit. Generate one, or leave it empty to have "
                     "one generated in the cluster.", secret=True)
    secrets = scope.get("pipelines_webhook_secrets") or {}
    if isinstance(secrets, Mapping):
        for pipeline, value in secrets.items():
            if isinstance(value, str) and value:
                _secret_value_problems(problems, "secrets", f"pipelines_webhook_secrets['{pipeline}']", value, known,
                                       min_length=16)
    for repo in scope.get("argocd_repositories") or []:
        if isinstance(repo, Mapping) and isinstance(repo.get("password"), str) and repo.get("password"):
            _secret_value_problems(problems, "secrets", f"argocd_repositories[{repo.get('name')}].password",
                                   repo["password"], known)
    for name in sorted(k for k in ctx.controller_vars if k.startswith("vault_")):
        value = scope.get(name)
        if isinstance(value, str) and value in known:
            _secret_value_problems(problems, "secrets", name, value, known)


def _secret_value_problems(problems, area, name, value, known, min_length=0):
    if value in known or value.lower() in {k.lower() for k in known}:
        problems.add(area, name, value, "equals a documented example or placeholder (vault.yml.example, upstream "
                     "docs). Generate a real value (`openssl rand -hex 32`) into group_vars/all/vault.yml.", secret=True)
    elif min_length and len(value) < min_length:
        problems.add(area, name, value, f"is {len(value)} characters long; use at least {min_length} random characters "
                     "(`openssl rand -hex 32`).", secret=True)


def check_platform(ctx, problems):
    scope = ctx.controller()
    domain = scope.get("mlops_domain")
    if not isinstance(domain, str) or len(domain) > 253 or not DNS1123_SUBDOMAIN.match(domain) or any(
            len(label) > 63 for label in domain.split(".")):
        problems.add("platform", "mlops_domain", domain, "must be a lower-case DNS name (letters, digits, '-', labels "
                     f"separated by '.'), e.g. {_suggest_name(domain)!r}: every UI host name is built from it.")
    namespaces = scope.get("mlops_namespaces") or {}
    if isinstance(namespaces, Mapping):
        for key, value in namespaces.items():
            if not isinstance(value, str) or len(value) > 63 or not DNS1123_LABEL.match(value):
                problems.add("platform", f"mlops_namespaces.{key}", value, "is not a valid namespace name (DNS-1123 "
                             "label: lower-case letters, digits and '-', at most 63).")
    buckets = scope.get("mlops_s3_buckets") or {}
    if isinstance(buckets, Mapping):
        seen = {}
        for key, value in buckets.items():
            why = _bucket_problem(value)
            if why:
                problems.add("platform", f"mlops_s3_buckets.{key}", value, why)
            seen.setdefault(value, []).append(key)
        for value, keys in seen.items():
            if len(keys) > 1:
                problems.add("platform", "mlops_s3_buckets", value, f"is used for {', '.join(keys)}: each needs its own bucket.")
    projects = [("mlops_registry_project", scope.get("mlops_registry_project")),
                ("mlops_registry_cache_project", scope.get("mlops_registry_cache_project")),
                ("harbor_proxy_cache_project", scope.get("harbor_proxy_cache_project"))]
    projects += [(f"harbor_public_projects[{i}]", p) for i, p in enumerate(scope.get("harbor_public_projects") or [])]
    for name, value in projects:
        if not isinstance(value, str) or not 1 <= len(value) <= 255 or not HARBOR_PROJECT.match(value):
            problems.add("platform", name, value, "is not a valid Harbor project name (lower-case letters and digits, "
                         "separated by single '.', '_' or '-').")
    issuer = scope.get("mlops_tls_issuer")
    acme = isinstance(issuer, str) and issuer.startswith("letsencrypt")
    if _truthy(scope.get("cert_manager_enabled", True)):
        existing = ["selfsigned", "researchops-ca"] + (["letsencrypt-staging", "letsencrypt"] if acme else [])
        for name in TLS_ISSUER_VARIABLES:
            role = name.split("_tls_issuer", maxsplit=1)[0].replace("_webhook", "")
            if role in ENABLED and not _truthy(scope.get(ENABLED[role], True)):
                continue
            value = scope.get(name)
            if value not in existing:
                problems.add("platform", name, value, "names a ClusterIssuer the cert_manager role does not create "
                             f"(with mlops_tls_issuer={issuer}: {', '.join(existing)}). Remove it to follow "
                             "mlops_tls_issuer, or pick one of those.")
    if acme:
        email = scope.get("cert_manager_acme_email")
        if not isinstance(email, str) or not EMAIL.match(email):
            problems.add("platform", "cert_manager_acme_email", email, f"mlops_tls_issuer is {issuer}: Let's Encrypt "
                         "needs the account's e-mail address. Set cert_manager_acme_email.")
        token, undefined = scope.resolve("cert_manager_cloudflare_api_token")
        if token is _MISSING or not token:
            problems.add("platform", "cert_manager_cloudflare_api_token", _MISSING, f"mlops_tls_issuer is {issuer}: set "
                         "vault_cloudflare_api_token (an API token with Zone:DNS:Edit on "
                         f"{domain}), or use mlops_tls_issuer: selfsigned for an offline lab.")
    if _truthy(scope.get("object_storage_enabled", True)) and scope.get("object_storage_mode") == "external":
        for name in ("object_storage_external_access_key_id", "object_storage_external_secret_access_key"):
            if not scope.get(name):
                problems.add("platform", name, _MISSING, "object_storage_mode is external: set the store's keys "
                             "(vault_s3_access_key_id / vault_s3_secret_access_key in the vault).")
        endpoint = scope.get("mlops_s3_endpoint")
        if isinstance(endpoint, str) and ".svc.cluster.local" in endpoint:
            problems.add("platform", "mlops_s3_endpoint", endpoint, "object_storage_mode is external but the endpoint "
                         "is the in-cluster Garage service: set mlops_s3_endpoint to the external store's URL.")
    sink = scope.get("mlops_k8s_sink")
    if sink == "render":
        render_dir, undefined = scope.resolve("mlops_render_dir")
        if render_dir is _MISSING or not render_dir or not str(render_dir).strip():
            problems.add("platform", "mlops_render_dir", render_dir if render_dir is not _MISSING else _MISSING,
                         "mlops_k8s_sink is render: set mlops_render_dir to the output folder.")
        elif os.path.exists(render_dir) and not os.path.isdir(render_dir):
            problems.add("platform", "mlops_render_dir", render_dir, "exists and is not a folder: point it at a folder.")
    if _truthy(scope.get("storage_enabled", True)):
        server = scope.get("storage_nfs_server")
        if not server:
            problems.add("platform", "storage_nfs_server", server or "", "the NFS StorageClass is the default but there "
                         "is no NFS server: add a host to group nfs_servers, set storage_nfs_server and "
                         "storage_nfs_share, or set storage_enabled: false.")
        else:
            why = _address_problem(server)
            if why:
                problems.add("platform", "storage_nfs_server", server, why + ".")
        share = scope.get("storage_nfs_share")
        if not isinstance(share, str) or not share.startswith("/"):
            problems.add("platform", "storage_nfs_share", share, "must be the absolute path of the NFS export.")


def _bucket_problem(value):
    if not isinstance(value, str) or not S3_BUCKET.match(value):
        return ("is not a valid S3 bucket name: 3-63 characters, lower-case letters, digits, '.' and '-', starting "
                "and ending with a letter or digit.")
    if ".." in value or _is_ip(value):
        return "is not a valid S3 bucket name: no '..' and not an IP address."
    if value.startswith(("xn--", "sthree-")) or value.endswith(("-s3alias", "--ol-s3")):
        return "is not a valid S3 bucket name: reserved prefix or suffix."
    return None


def check_pipelines(ctx, problems, spec_filter, objects_filter):
    scope = ctx.controller()
    if not _truthy(scope.get("pipelines_enabled", True)):
        return
    specs, undefined = scope.resolve("pipelines_list")
    if specs is _MISSING:
        problems.add("pipelines", "mlops_pipelines", _MISSING, f"cannot be read: {undefined} is not defined.")
        return
    if not isinstance(specs, list):
        return  # the argument spec check reports the type
    names, good = {}, []
    for index, spec in enumerate(specs):
        label = spec.get("name") if isinstance(spec, Mapping) else None
        try:
            validated = spec_filter([spec])
        except AnsibleError as e:
            message = str(getattr(e, "message", e)).replace("pipelines[0]", f"mlops_pipelines[{index}]")
            problems.add("pipelines", f"mlops_pipelines[{index}]" + (f" ({label})" if label else ""), _MISSING,
                         f"{message}. Fix the spec (docs/pipeline-spec.md).")
            continue
        good.append(spec)
        names.setdefault(validated[0]["name"], []).append(index)
    for name, indexes in names.items():
        if len(indexes) > 1:
            problems.add("pipelines", "mlops_pipelines", name, f"is the name of pipelines {indexes}: names must be unique.")
    webhook = scope.get("pipelines_webhook_secrets") or {}
    if isinstance(webhook, Mapping):
        for name in webhook:
            if name not in names:
                problems.add("pipelines", f"pipelines_webhook_secrets['{name}']", _MISSING, "is given for a pipeline "
                             f"that mlops_pipelines does not define (known: {', '.join(names) or 'none'}). Remove it or "
                             "fix the name.")
    if good and len(good) == len(specs) and all(len(v) == 1 for v in names.values()):
        buckets = scope.get("mlops_s3_buckets") or {}
        platform = {
            "namespace": scope.get("pipelines_namespace"), "argocd_namespace": scope.get("pipelines_argocd_namespace"),
            "argocd_project": scope.get("pipelines_argocd_project"), "registry_host": scope.get("mlops_registry_host"),
            "registry_project": scope.get("mlops_registry_project"),
            "registry_cache_project": scope.get("mlops_registry_cache_project"),
            "registry_push_secret": scope.get("mlops_registry_push_secret"),
            "s3_endpoint": scope.get("mlops_s3_endpoint"), "s3_region": scope.get("mlops_s3_region"),
            "s3_credentials_secret": scope.get("mlops_s3_credentials_secret"),
            "datasets_bucket": buckets.get("datasets") if isinstance(buckets, Mapping) else None,
            "models_bucket": buckets.get("models") if isinstance(buckets, Mapping) else None,
            "ca_configmap": scope.get("mlops_ca_configmap"), "webhook_host": scope.get("pipelines_webhook_host"),
        }
        try:
            objects_filter(good, platform=platform, images=scope.get("mlops_pipelines_images"))
        except AnsibleError as e:
            problems.add("pipelines", "mlops_pipelines", _MISSING, f"{getattr(e, 'message', e)}. Fix the spec or the "
                         "platform variable it names.")


def check_argument_specs(ctx, problems):
    """Each role's argument spec against the values the role will see, where it runs."""
    scope = ctx.controller()
    runs = [(None, "mlops", scope), (None, "k8s_sink", scope)]
    for role in CONTROLLER_ROLES:
        if role in ENABLED and not _truthy(scope.get(ENABLED[role], True)):
            continue
        runs.append((None, role, scope))
    cluster, gpu = ctx.group("k3s_cluster"), ctx.group("gpu_nodes")
    for host in cluster:
        node_roles = _node_roles(ctx, host)
        host_scope = ctx.scope(host, ("prereqs", "nfs_client", "docker", "nvidia_runtime") + node_roles)
        roles = ["prereqs", "nfs_client"] + list(node_roles)
        if _truthy(host_scope.get("docker_enabled", True)):
            roles.append("docker")
        if host in gpu:
            roles.append("nvidia_runtime")
        runs += [(host, role, host_scope) for role in roles]
    for host in ctx.group("nfs_servers"):
        host_scope = ctx.scope(host, ("prereqs", "nfs_server"))
        runs += [(host, role, host_scope) for role in ("nfs_server",) + (() if host in cluster else ("prereqs",))]
    for host, role, role_scope in runs:
        _check_role_spec(ctx, problems, host, role, role_scope)


def _check_role_spec(ctx, problems, host, role, scope):
    options = ctx.role(role)[2]
    if not options:
        return
    area = f"host {host}" if host else "platform"
    params = {}
    for name in options:
        value, undefined = scope.resolve(name)
        if value is not _MISSING:
            params[name] = value
        elif name == "k3s_token":
            continue  # check_secrets says what to do
        elif undefined and undefined != name and not undefined.startswith(("__", "ansible_", "!")):
            problems.add(area, name, scope._vars.get(name, _MISSING), f"uses {undefined}, which is not defined "
                         "(a vault variable not in vault.yml? a typo?). Define it or remove the reference.",
                         secret=name in SECRET_VARIABLES)
        elif undefined and undefined.startswith("!"):
            origin = "set in the inventory" if scope.set_by_inventory(name) else f"default of role {role}"
            problems.add(area, name, _MISSING, f"({origin}) cannot be computed: {undefined[1:]}. Fix the "
                         "variables it is computed from (other problems above/below), or set it.")
    if role == "k3s" and host:
        # k3s_server / k3s_agent include the shared k3s role with its mode in the include's
        # vars (roles/k3s_server/tasks/main.yml): the inventory never sets it.
        params.setdefault("k3s_mode", "server" if host in ctx.group("k3s_servers") else "agent")
    spec = {}
    for name, option in options.items():
        option = dict(option)
        option.pop("default", None)
        if name not in params and not option.get("required"):
            continue
        spec[name] = option
    try:
        result = ArgumentSpecValidator(spec).validate(params)
    except Exception as e:  # a broken spec file is a bug of the collection; report it, keep checking
        problems.add(area, f"roles/{role}/meta/argument_specs.yml", _MISSING, f"cannot be used: {e}")
        return
    for error in result.errors:
        message = str(error)
        names = [n for n in spec if re.search(rf"\b{re.escape(n)}\b", message)]
        name = names[0] if names else role
        secret = name in SECRET_VARIABLES
        problems.add(area, name, params.get(name, _MISSING), f"role {role}: {message}. Fix the value in the inventory "
                     f"(allowed values: roles/{role}/README.md).", secret=secret)


def check_controller(ctx, spec_filter, objects_filter):
    """Run every controller-side check; return the Problems."""
    problems = Problems()
    check_removed(ctx, problems)
    check_groups(ctx, problems)
    check_names_and_addresses(ctx, problems)
    check_nfs_clients(ctx, problems)
    check_versions(ctx, problems)
    check_secrets(ctx, problems)
    check_platform(ctx, problems)
    check_argument_specs(ctx, problems)
    check_pipelines(ctx, problems, spec_filter, objects_filter)
    return problems


# --------------------------------------------------------------------------- host facts
def check_hosts(ctx, probes, default_time=None, problems=None):
    """Checks of the facts gathered on the nodes (one pass, read-only).

    probes: {host: {"facts": ansible_facts, "probe": researchops.mlops.node_probe result}}."""
    problems = problems if problems is not None else Problems()
    options = ctx.options
    supported_os = options.get("supported_os") or {}
    supported_arch = options.get("supported_arch") or []
    scope = ctx.controller()
    version = scope.get("mlops_k3s_version")
    checksums = (scope.get("mlops_k3s_checksums") or {}).get(version) or {}
    max_skew = int(options.get("max_time_skew", 30))
    min_free = float(options.get("min_free_gib", 10))
    for host, data in probes.items():
        facts, probe = data.get("facts") or {}, data.get("probe") or {}
        area = f"host {host}"
        if data.get("unreachable") or probe.get("unreachable") is True:
            problems.add(area, "ansible_host", data.get("address", host), "cannot be reached over SSH: "
                         f"{data.get('error') or probe.get('msg', 'unreachable')}. Fix ansible_host/ansible_user or "
                         "remove the host.")
            continue
        if not facts:
            continue
        dist, major = facts.get("distribution"), str(facts.get("distribution_major_version"))
        if dist not in supported_os or major not in [str(v) for v in supported_os[dist]]:
            problems.add(area, "ansible_distribution", f"{dist} {facts.get('distribution_version')}",
                         "is not supported (supported: " + ", ".join(
                             f"{k} {'/'.join(map(str, v))}" for k, v in supported_os.items()) + "). Reinstall the node "
                         "or remove it from the inventory.")
        arch = facts.get("architecture")
        if arch not in supported_arch:
            problems.add(area, "ansible_architecture", arch, "k3s ships binaries for "
                         f"{', '.join(supported_arch)} only (on a Raspberry Pi use a 64-bit or armhf OS).")
        elif host in ctx.group("k3s_cluster"):
            k3s_arch = K3S_ARCH.get(arch)
            host_scope = ctx.scope(host, _node_roles(ctx, host))
            kinds = ["binary"] + (["airgap_images"] if _truthy(host_scope.get("k3s_airgap_images")) else [])
            for kind in kinds:
                if k3s_arch not in (checksums.get(kind) or {}):
                    problems.add(area, "mlops_k3s_checksums", version, f"has no {kind} sha256 for {k3s_arch} ({arch}). "
                                 f"Add mlops_k3s_checksums['{version}'].{kind}.{k3s_arch} from the release's "
                                 f"sha256sum-{k3s_arch}.txt.")
        if not probe:
            continue
        if host in ctx.group("k3s_cluster"):
            if not probe.get("cgroup_memory"):
                problems.add(area, "prereqs_raspberry_pi_cmdline_flags", probe.get("cgroup_version"), "the memory cgroup "
                             "controller is not enabled; k3s cannot start. On a Raspberry Pi let prereqs add "
                             "cgroup_enable=memory cgroup_memory=1 (prereqs_reboot_allowed: true) or add them to the "
                             "kernel command line and reboot.")
            for module in probe.get("modules_missing") or []:
                problems.add(area, "prereqs_kernel_modules", module, "is neither loaded, built in nor installed for "
                             "the running kernel: install the kernel's modules package (e.g. linux-modules-extra) or "
                             "remove it from prereqs_kernel_modules.")
        if host in ctx.group("gpu_nodes") and not probe.get("nvidia_driver"):
            problems.add(area, "gpu_nodes", host, "is a GPU node but no NVIDIA driver answers (nvidia-smi): install the "
                         "driver first, or remove the host from gpu_nodes (nvidia_runtime_require_driver).")
        for path, free in (probe.get("free_gib") or {}).items():
            if free is not None and free < min_free:
                problems.add(area, "preflight_min_free_gib", round(free, 1), f"only {free:.1f} GiB free under {path} "
                             f"(need {min_free:g}): free space or lower preflight_min_free_gib.")
        skew = probe.get("time_skew")
        if skew is None and probe.get("time") is not None and data.get("controller_time", default_time) is not None:
            skew = probe["time"] - data.get("controller_time", default_time)
        if skew is not None and abs(skew) > max_skew:
            problems.add(area, "preflight_max_time_skew", round(skew), f"the node clock is {skew:+.0f} s off the "
                         f"controller (max {max_skew} s): enable time sync (prereqs_time_sync_enabled) and fix the "
                         "clock; TLS certificates and etcd need it.")
        harbor = scope.get("mlops_registry_host")
        for endpoint, error in (probe.get("unreachable_endpoints") or {}).items():
            if harbor and harbor in endpoint:
                continue  # Harbor is installed by this playbook: not there on a first run
            problems.add(area, "k3s_registry_mirrors", endpoint, f"is not reachable from the node ({error}): fix the "
                         "mirror address or remove it.")
    return problems
