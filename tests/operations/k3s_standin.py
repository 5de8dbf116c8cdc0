#!/usr/bin/env python3
"""Stand-in for the k3s binary: accepts only the snapshot and cluster-reset invocations
the upstream CLI defines, checks their arguments, records them, and refuses the rest.

Flags from k3s ``pkg/cli/cmds/etcd_snapshot.go`` (``EtcdSnapshotFlags``: --name, --dir
a.k.a. --etcd-snapshot-dir, ...; subcommand ``save``) and ``pkg/cli/cmds/server.go``
(--cluster-reset, --cluster-reset-restore-path, --token). Behaviour from
``pkg/etcd/snapshot.go`` (``Snapshot``: the file is named <name>-<node>-<unix time> in
--dir) and ``pkg/cluster/bootstrap.go`` (a restore with the wrong token cannot decrypt
the bootstrap data and fails).
Environment: STANDIN_LOG (calls, one JSON per line), STANDIN_TOKEN (the cluster's token).
"""
import json
import os
import sys
import time

args = sys.argv[1:]
with open(os.environ["STANDIN_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(args) + "\n")


def refuse(msg):
    print(f"k3s stand-in refuses: {msg}: {args}", file=sys.stderr)
    sys.exit(1)


def flags(rest, allowed):
    found = {}
    for arg in rest:
        name, sep, value = arg.partition("=")
        if name not in allowed:
            refuse(f"unknown flag {name}")
        found[name] = value if sep else True
    return found


if args[:2] == ["etcd-snapshot", "save"]:
    f = flags(args[2:], {"--name", "--dir", "--etcd-snapshot-dir", "--snapshot-compress"})
    directory = f.get("--dir") or f.get("--etcd-snapshot-dir")
    if not f.get("--name") or not directory or not os.path.isdir(directory):
        refuse("save needs --name and an existing --dir")
    path = os.path.join(directory, f"{f['--name']}-{os.uname().nodename}-{int(time.time())}")
    with open(path, "w", encoding="utf-8") as out:
        out.write("etcd snapshot of a stand-in cluster\n")
    print(f"Snapshot {os.path.basename(path)} saved.")
elif args[:1] == ["server"] and "--cluster-reset" in args:
    f = flags(args[1:], {"--cluster-reset", "--cluster-reset-restore-path", "--token"})
    path = f.get("--cluster-reset-restore-path")
    if not path or not os.path.isfile(path):
        refuse("--cluster-reset-restore-path must name a snapshot file")
    if f.get("--token") != os.environ["STANDIN_TOKEN"]:
        refuse("bootstrap data cannot be decrypted with this token")
    print("Managed etcd cluster membership has been reset, restart without --cluster-reset flag now.")
else:
    refuse("not an invocation this stand-in knows")
