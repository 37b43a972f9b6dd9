#!/usr/bin/env bash
# Builds a local Go builder image, for machines that cannot pull images
# (CI here has no registry). It packs this machine's Go toolchain, a static
# busybox for /bin/sh and the system CA bundle, and imports the tarball:
#
#   scripts/build-builder-image.sh [image-name]     # default iothub-go-builder:local
#
# Then: IOTHUB_GO_IMAGE=iothub-go-builder:local docker compose build
set -euo pipefail
image="${1:-iothub-go-builder:local}"
goroot="$(go env GOROOT)"
busybox=""
for b in /bin/busybox /usr/bin/busybox; do [ -x "$b" ] && busybox="$b"; done
if [ -z "$busybox" ]; then
	echo "build-builder-image: a static busybox is needed (apt-get install busybox-static)" >&2
	exit 1
fi
if docker image inspect "$image" >/dev/null 2>&1; then
	echo "build-builder-image: $image already exists"
	exit 0
fi
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/usr/local" "$root/etc/ssl/certs" "$root/tmp" "$root/root"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
# Relative links: the applets must resolve inside the image, not on this host.
for applet in $("$root/bin/busybox" --list); do
	[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
cp -a "$goroot" "$root/usr/local/go"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
tar -C "$root" -c . | docker import \
	-c 'ENV PATH=/usr/local/go/bin:/bin' \
	-c 'ENV HOME=/root' \
	-c 'ENV GOPATH=/root/go' \
	- "$image" >/dev/null
echo "build-builder-image: imported $image from $goroot"
