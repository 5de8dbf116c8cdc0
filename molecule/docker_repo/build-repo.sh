#!/bin/sh
# Build a signed apt repository of stand-in Docker packages under $1 (controller side):
#   $1/debian/dists/bookworm/{InRelease,Release}, .../stable/binary-amd64/Packages,
#   $1/debian/pool/*.deb, $1/key.asc (the throw-away signing key), $1/fingerprint.
# The packages only install marker files, a docker.service unit running a stand-in dockerd
# and the docker group, which is what the docker role relies on after the install.
set -eu
out=$1
version=5:99.0.0-1~debian.12~bookworm
rm -rf "$out" && mkdir -p "$out/debian/pool" "$out/debian/dists/bookworm/stable/binary-amd64" "$out/build"
for pkg in docker-ce docker-ce-cli containerd.io docker-buildx-plugin; do
  root="$out/build/$pkg"
  mkdir -p "$root/DEBIAN" "$root/usr/share/standin-docker"
  echo "$pkg stand-in from the molecule test repository" > "$root/usr/share/standin-docker/$pkg"
  cat > "$root/DEBIAN/control" <<CONTROL
Package: $pkg
Version: $version
Architecture: amd64
Maintainer: ResearchOps molecule <molecule@example.test>
Description: stand-in $pkg (molecule docker_repo scenario)
CONTROL
done
root="$out/build/docker-ce"
mkdir -p "$root/lib/systemd/system" "$root/usr/bin"
printf '#!/bin/sh\nexec sleep infinity\n' > "$root/usr/bin/dockerd"
chmod 0755 "$root/usr/bin/dockerd"
printf '[Unit]\nDescription=stand-in Docker\n[Service]\nExecStart=/usr/bin/dockerd\n[Install]\nWantedBy=multi-user.target\n' \
  > "$root/lib/systemd/system/docker.service"
printf '#!/bin/sh\ngetent group docker >/dev/null || groupadd --system docker\n' > "$root/DEBIAN/postinst"
chmod 0755 "$root/DEBIAN/postinst"
for pkg in docker-ce docker-ce-cli containerd.io docker-buildx-plugin; do
  dpkg-deb --root-owner-group --build "$out/build/$pkg" "$out/debian/pool/${pkg}_amd64.deb" >/dev/null
done
rm -rf "$out/build"
(cd "$out/debian" && dpkg-scanpackages --arch amd64 pool > dists/bookworm/stable/binary-amd64/Packages 2>/dev/null)
release="$out/debian/dists/bookworm/Release"
{
  echo "Origin: ResearchOps molecule"
  echo "Suite: bookworm"
  echo "Codename: bookworm"
  echo "Architectures: amd64"
  echo "Components: stable"
  echo "Date: $(LC_ALL=C date -u '+%a, %d %b %Y %H:%M:%S UTC')"
  echo "SHA256:"
  f=stable/binary-amd64/Packages
  echo " $(sha256sum "$out/debian/dists/bookworm/$f" | cut -d' ' -f1) $(wc -c < "$out/debian/dists/bookworm/$f") $f"
} > "$release"
export GNUPGHOME="$out/gnupg"
mkdir -m 0700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key "ResearchOps molecule repository <molecule@example.test>" rsa2048 sign 1d
gpg --batch --quiet --armor --export > "$out/key.asc"
gpg --batch --with-colons --list-keys | awk -F: '$1 == "fpr" { print $10; exit }' > "$out/fingerprint"
gpg --batch --quiet --yes --clearsign -o "$out/debian/dists/bookworm/InRelease" "$release"
gpg --batch --quiet --yes -abs -o "$release.gpg" "$release"
gpgconf --kill all 2>/dev/null || true
rm -rf "$GNUPGHOME"
