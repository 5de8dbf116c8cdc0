#!/usr/bin/env bash
# Build the Debian 12 systemd image the molecule scenarios run on.
#
# No registry image can be pulled in our CI/lab sandboxes, so the image is bootstrapped
# from Debian's own mirror with debootstrap and imported into the local docker daemon.
#
#   bash molecule/resources/build-image.sh          # build when missing
#   FORCE=1 bash molecule/resources/build-image.sh  # rebuild (reuses the cached rootfs)
#   FORCE=1 REFRESH=1 bash ...                       # re-run debootstrap too
#
# Environment: IMAGE (default researchops/debian12-systemd:latest), SUITE (bookworm),
# MIRROR (http://deb.debian.org/debian), CACHE_DIR (molecule/.images, gitignored).
set -euo pipefail

IMAGE="${IMAGE:-researchops/debian12-systemd:latest}"
SUITE="${SUITE:-bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
INCLUDE="systemd,systemd-sysv,dbus,procps,python3,python3-apt,sudo,iproute2,ca-certificates"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_DIR="${CACHE_DIR:-${HERE}/../.images}"
ROOTFS_TAR="${CACHE_DIR}/debian-${SUITE}-systemd-rootfs.tar"

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v docker >/dev/null || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "docker daemon not reachable (is dockerd running, are you in group docker?)"

if [[ "${FORCE:-0}" != "1" ]] && docker image inspect "${IMAGE}" >/dev/null 2>&1; then
  log "${IMAGE} already present (FORCE=1 to rebuild)"
  exit 0
fi

mkdir -p "${CACHE_DIR}"

if [[ "${REFRESH:-0}" == "1" || ! -s "${ROOTFS_TAR}" ]]; then
  command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
  [[ "$(id -u)" == "0" ]] || die "debootstrap needs root"
  workdir="$(mktemp -d "${CACHE_DIR}/rootfs.XXXXXX")"
  trap 'rm -rf "${workdir}"' EXIT
  log "debootstrap ${SUITE} from ${MIRROR} into ${workdir}"
  debootstrap --variant=minbase --include="${INCLUDE}" "${SUITE}" "${workdir}" "${MIRROR}" >&2

  # Units that cannot work (or only spam errors) inside an unprivileged container.
  for unit in \
      getty.target console-getty.service getty@tty1.service serial-getty@.service \
      systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
      systemd-udev-trigger.service systemd-udev-settle.service \
      systemd-modules-load.service sys-kernel-config.mount sys-kernel-debug.mount \
      sys-kernel-tracing.mount sys-fs-fuse-connections.mount \
      systemd-remount-fs.service systemd-firstboot.service \
      systemd-random-seed.service systemd-machine-id-commit.service \
      systemd-networkd-wait-online.service \
      systemd-hwdb-update.service systemd-journald-audit.socket \
      apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
    ln -sf /dev/null "${workdir}/etc/systemd/system/${unit}"
  done
  # Boot to multi-user (no graphical/getty), keep the journal in memory.
  ln -sf /lib/systemd/system/multi-user.target "${workdir}/etc/systemd/system/default.target"
  mkdir -p "${workdir}/etc/systemd/journald.conf.d"
  printf '[Journal]\nStorage=volatile\n' > "${workdir}/etc/systemd/journald.conf.d/container.conf"
  # Let the container runtime tell systemd it runs in a container; no machine-id baked in
  # (systemd generates one per container at boot).
  : > "${workdir}/etc/machine-id"
  rm -f "${workdir}/var/lib/dbus/machine-id"
  # Small image: drop apt lists and caches (scenarios run apt-get update when they need).
  rm -rf "${workdir}"/var/cache/apt/archives/*.deb "${workdir}"/var/lib/apt/lists/* \
    "${workdir}"/usr/share/doc/* "${workdir}"/usr/share/man/*
  printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\n' \
    > "${workdir}/etc/dpkg/dpkg.cfg.d/01-container-nodoc"
  # Empty lists must look stale, or apt's cache_valid_time would skip the first update.
  touch -d @0 "${workdir}/var/lib/apt/lists"
  rm -f "${workdir}/var/lib/apt/periodic/update-success-stamp"

  log "caching rootfs in ${ROOTFS_TAR}"
  tar --numeric-owner -C "${workdir}" -cf "${ROOTFS_TAR}.tmp" .
  mv "${ROOTFS_TAR}.tmp" "${ROOTFS_TAR}"
  rm -rf "${workdir}"
  trap - EXIT
fi

log "importing ${ROOTFS_TAR} as ${IMAGE}"
docker import \
  --change 'CMD ["/lib/systemd/systemd"]' \
  --change 'ENV container=docker' \
  "${ROOTFS_TAR}" "${IMAGE}" >/dev/null
docker image inspect --format '{{.Id}}' "${IMAGE}"
