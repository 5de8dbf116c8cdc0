#!/usr/bin/env bash
# System packages the test layers need: Docker (molecule's driver) and debootstrap (the
# scenarios' base image is built locally, no registry is needed), PostgreSQL (the backup
# round-trip tests start their own server from its binaries). Needs root or sudo.
set -euo pipefail
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
if ((${#missing[@]})); then
  echo "host-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! $sudo docker info >/dev/null 2>&1; then
  echo "host-deps: starting dockerd"
  if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
    $sudo systemctl start docker
  else
    $sudo bash -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
  fi
  for _ in $(seq 1 60); do
    $sudo docker info >/dev/null 2>&1 && break
    sleep 1
  done
  $sudo docker info >/dev/null 2>&1 || { echo "host-deps: dockerd did not start (see /var/log/dockerd.log)" >&2; exit 1; }
fi
echo "host-deps: docker $($sudo docker version --format '{{.Server.Version}}'), $(debootstrap --version | head -1)"
