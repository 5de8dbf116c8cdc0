#!/bin/sh
# k3s-standin.sh: a STAND-IN for the k3s binary, for the molecule scenarios only.
#
# k3s cannot be downloaded (nor run) in the test containers, so the scenarios install this
# script as `k3s` through the roles' airgap path (k3s_artifacts_dir, sha256-checked like
# the real asset). It imitates what the roles rely on:
#   k3s --version                 "k3s version <STANDIN_VERSION> (...)", like the real one
#   k3s server                    reads /etc/rancher/k3s/config.yaml; writes the server
#                                 token (/var/lib/rancher/k3s/server/token, K10...::server:...)
#                                 and the admin kubeconfig (/etc/rancher/k3s/k3s.yaml,
#                                 https://127.0.0.1:6443, write-kubeconfig-mode), then
#                                 tells systemd it is ready and keeps running
#                                 A server records the token secret it was started with in
#                                 the stand-in API ($API/<node>.token); a joining server or
#                                 an agent is refused (exit 1, nothing written) when its
#                                 token is not the one the cluster's servers were started
#                                 with, as the real supervisor refuses a join with a wrong
#                                 token. So a test reads the token each process really
#                                 started with, not the file the role wrote.
#   k3s agent                     needs server: and a readable token-file, then the same
#   k3s kubectl get node[s] [N]   prints node N (default this node) from the stand-in "API":
#                                 a folder shared by the scenario's containers
#                                 (/var/lib/standin-api, bound from the scenario's ephemeral
#                                 directory) where each RUNNING server/agent process records
#                                 its node name and the version of the binary it was started
#                                 from, and removes it when it stops. A node whose binary was
#                                 replaced but not restarted still reports the old version;
#                                 a node that is not running is NotFound (exit 1), like the
#                                 real API.
#   k3s kubectl cordon|uncordon|drain N
#                                 marks node N unschedulable (drain also needs
#                                 --ignore-daemonsets and --delete-emptydir-data, as a real
#                                 drain of a node with DaemonSet and emptyDir pods does) or
#                                 schedulable again. Starts, stops, drains and uncordons are
#                                 appended to $API/events, so a test can check their order.
# It does not run Kubernetes: no API, etcd, containerd, CNI or images.
set -eu

STANDIN_VERSION="v1.34.1+k3s1"
# K3S_CONFIG_FILE and K3S_DATA_DIR are the real k3s's environment names for --config and
# --data-dir (a verify step starts a probe with its own config and data dir).
CONFIG="${K3S_CONFIG_FILE:-/etc/rancher/k3s/config.yaml}"
DATA="${K3S_DATA_DIR:-/var/lib/rancher/k3s}"
API=/var/lib/standin-api

# Value of a top-level scalar key of config.yaml (as written by to_nice_yaml).
cfg() {
  [ -r "$CONFIG" ] || return 0
  sed -n "s/^$1: *//p" "$CONFIG" | head -n 1 | sed "s/^['\"]//; s/['\"]\$//"
}

node_name() {
  name="$(cfg node-name)"
  if [ -n "$name" ]; then echo "$name"; else hostname; fi
}

# Type=notify accepts READY=1 from the main PID only (NotifyAccess=main), so a child
# `systemd-notify --ready` would be ignored: exec python, which keeps this PID, to send it.
# The process registers its node in the stand-in API (removed again on SIGTERM, which
# systemd sends on stop/restart).
ready_and_wait() {
  role="$1"
  STANDIN_NODE="$(node_name)" STANDIN_ROLE="$role" STANDIN_VERSION="$STANDIN_VERSION" STANDIN_API="$API" exec python3 -c '
import os, signal, socket, sys, time
api, node = os.environ["STANDIN_API"], os.environ["STANDIN_NODE"]
record = os.path.join(api, node)
if os.path.isdir(api):
    with open(record + ".tmp", "w") as handle:
        handle.write("%s %s\n" % (os.environ["STANDIN_ROLE"], os.environ["STANDIN_VERSION"]))
    os.replace(record + ".tmp", record)
    with open(os.path.join(api, "events"), "a") as handle:
        handle.write("%s start %s\n" % (node, os.environ["STANDIN_VERSION"]))
def stop(*_):
    if os.path.exists(record):
        os.unlink(record)
        with open(os.path.join(api, "events"), "a") as handle:
            handle.write("%s stop\n" % node)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
addr = os.environ.get("NOTIFY_SOCKET")
if addr:
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.connect(addr)
    sock.sendall(b"READY=1")
    sock.close()
while True:
    time.sleep(3600)
'
}

write_kubeconfig() {
  mode="$(cfg write-kubeconfig-mode)"
  umask 077
  cat > /etc/rancher/k3s/k3s.yaml <<KUBECONFIG
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: c3RhbmQtaW4gQ0E=
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
users:
- name: default
  user:
    client-certificate-data: c3RhbmQtaW4gY2VydA==
    client-key-data: c3RhbmQtaW4ga2V5
KUBECONFIG
  chmod "${mode:-0600}" /etc/rancher/k3s/k3s.yaml
}

# Refuse to join when the secret ($1) is not the one the cluster's servers started with:
# the server named in server: if it recorded one, else any recorded server.
check_join_token() {
  [ -d "$API" ] || return 0
  host="$(echo "$join" | sed 's#^https://##; s#:[0-9]*$##; s#^\[##; s#\]$##')"
  if [ -r "$API/$host.token" ]; then
    expected="$(cat "$API/$host.token")"
  else
    expected="$(cat "$API"/*.token 2>/dev/null | head -n 1)"
  fi
  [ -z "$expected" ] || [ "$expected" = "$1" ] || {
    echo "k3s-standin: token does not match the token of the cluster at $join: join refused" >&2
    exit 1
  }
}

# The secret of a token file's content: K10<ca hash>::server:<secret> or a bare secret.
secret_of() {
  case "$1" in
    K10*::*:*) echo "${1##*:}" ;;
    *) echo "$1" ;;
  esac
}

server() {
  join="$(cfg server)"
  token_file="$(cfg token-file)"
  if [ -n "$token_file" ]; then
    [ -r "$token_file" ] || { echo "k3s-standin: token-file $token_file is not readable" >&2; exit 1; }
    secret="$(cat "$token_file")"
  elif [ -s "$DATA/server/token" ]; then
    secret="$(sed 's/^.*::server://' "$DATA/server/token")"
  else
    secret="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
  fi
  case "$secret" in
    K10*::server:*) full="$secret" ;;
    *) full="K10standinca0000000000000000000000000000000000000000000000000000::server:${secret}" ;;
  esac
  [ -z "$join" ] || check_join_token "$(secret_of "$full")"
  mkdir -p "$DATA/server" /etc/rancher/k3s
  ( umask 077; printf '%s\n' "$full" > "$DATA/server/token" )
  if [ -d "$API" ]; then
    ( umask 077; secret_of "$full" > "$API/$(node_name).token" )
  fi
  # Joining servers remember whom they joined (a real one would sync etcd from it).
  if [ -n "$join" ]; then echo "$join" > "$DATA/server/standin-joined"; else rm -f "$DATA/server/standin-joined"; fi
  write_kubeconfig
  ready_and_wait control-plane,etcd,master
}

agent() {
  join="$(cfg server)"
  token_file="$(cfg token-file)"
  [ -n "$join" ] || { echo "k3s-standin: agent needs server: in $CONFIG" >&2; exit 1; }
  [ -n "$token_file" ] && [ -r "$token_file" ] || { echo "k3s-standin: agent needs a readable token-file" >&2; exit 1; }
  check_join_token "$(secret_of "$(cat "$token_file")")"
  mkdir -p "$DATA/agent"
  echo "$join" > "$DATA/agent/standin-joined"
  ready_and_wait "<none>"
}

node_action() {
  action=$1
  shift
  name=""
  flags=" "
  for arg in "$@"; do
    case "$arg" in
      -*) flags="$flags$arg " ;;
      *) name="$arg" ;;
    esac
  done
  [ -r "$API/$name" ] || { echo "Error from server (NotFound): nodes \"$name\" not found" >&2; exit 1; }
  case "$action" in
    cordon) touch "$API/$name.cordoned" ;;
    uncordon) rm -f "$API/$name.cordoned" ;;
    drain)
      case "$flags" in *" --ignore-daemonsets "*) ;; *)
        echo "error: cannot delete DaemonSet-managed Pods (use --ignore-daemonsets)" >&2; exit 1 ;; esac
      case "$flags" in *" --delete-emptydir-data "*) ;; *)
        echo "error: cannot delete Pods with local storage (use --delete-emptydir-data)" >&2; exit 1 ;; esac
      touch "$API/$name.cordoned"
      ;;
  esac
  echo "$name $action" >> "$API/events"
  echo "node/$name ${action}ed"
}

kubectl() {
  case "${1:-}" in
    cordon | uncordon | drain) node_action "$@"; return ;;
  esac
  [ "${1:-}" = get ] || { echo "k3s-standin: only 'kubectl get node[s]', cordon, uncordon and drain are imitated" >&2; exit 1; }
  case "${2:-}" in node|nodes) ;; *) echo "k3s-standin: only nodes can be listed" >&2; exit 1 ;; esac
  shift 2
  headers=1
  name=""
  for arg in "$@"; do
    case "$arg" in
      --no-headers) headers=0 ;;
      -*) ;;
      *) name="$arg" ;;
    esac
  done
  name="${name:-$(node_name)}"
  if [ ! -r "$API/$name" ]; then
    echo "Error from server (NotFound): nodes \"$name\" not found" >&2
    exit 1
  fi
  read -r role version < "$API/$name"
  status=Ready
  [ -e "$API/$name.cordoned" ] && status=Ready,SchedulingDisabled
  [ "$headers" = 1 ] && printf '%-24s %-26s %-22s %-5s %s\n' NAME STATUS ROLES AGE VERSION
  printf '%-24s %-26s %-22s %-5s %s\n' "$name" "$status" "$role" 1m "$version"
}

case "${1:-}" in
  --version|-v|version)
    echo "k3s version ${STANDIN_VERSION} (stand-in)"
    echo "go version go1.24 (stand-in)"
    ;;
  server) shift; server "$@" ;;
  agent) shift; agent "$@" ;;
  kubectl) shift; kubectl "$@" ;;
  *) echo "k3s-standin: unsupported command: $*" >&2; exit 1 ;;
esac
