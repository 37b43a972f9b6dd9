#!/usr/bin/env bash
# Builds a local Azurite image, for machines that cannot pull images (CI
# here has no registry; elsewhere compose pulls
# mcr.microsoft.com/azure-storage/azurite). It packs this machine's node
# binary with the shared libraries it links, a static busybox, and Azurite
# from e2e/azurite (npm ci), and imports the tarball:
#
#   scripts/build-azurite-image.sh [image-name]     # default iothub-azurite:local
#
# Then: IOTHUB_AZURITE_IMAGE=iothub-azurite:local docker compose up
set -euo pipefail
cd "$(dirname "$0")/.."
image="${1:-iothub-azurite:local}"
node="$(command -v node)" || { echo "build-azurite-image: node is needed" >&2; exit 1; }
node="$(readlink -f "$node")"
busybox=""
for b in /bin/busybox /usr/bin/busybox; do [ -x "$b" ] && busybox="$b"; done
if [ -z "$busybox" ]; then
	echo "build-azurite-image: a static busybox is needed (apt-get install busybox-static)" >&2
	exit 1
fi
if docker image inspect "$image" >/dev/null 2>&1; then
	echo "build-azurite-image: $image already exists"
	exit 0
fi
[ -d e2e/azurite/node_modules ] || (cd e2e/azurite && npm ci --no-audit --no-fund)
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/usr/bin" "$root/usr/local/bin" "$root/opt/azurite" "$root/tmp" "$root/data" "$root/etc"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
	[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
ln -s ../../bin/busybox "$root/usr/bin/env" # Azurite's launchers start with #!/usr/bin/env node
cp "$node" "$root/usr/local/bin/node"
# The libraries node links, at the paths the loader looks for them.
for lib in $(ldd "$node" | grep -o '/[^ ]*'); do
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done
cp -a e2e/azurite/node_modules e2e/azurite/package.json "$root/opt/azurite/"
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
tar -C "$root" -c . | docker import \
	-c 'ENV PATH=/usr/local/bin:/opt/azurite/node_modules/.bin:/bin' \
	-c 'WORKDIR /opt/azurite' \
	-c 'EXPOSE 10000' \
	- "$image" >/dev/null
echo "build-azurite-image: imported $image (node $("$node" --version), azurite $(node -p "require('./e2e/azurite/node_modules/azurite/package.json').version"))"
