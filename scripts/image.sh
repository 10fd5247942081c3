#!/usr/bin/env bash
# Builds the aether-agent container image from this repository with no
# registry: the binaries from a release build (meson install into a
# staging tree), and beside them only what they need to run: the shared
# libraries they link (their ldd closure, from this Debian 12 machine),
# and nothing else (no shell, no package manager). podman imports the tree; the image's size is printed.
#
#   scripts/image.sh [TAG]     default localhost/aether-agent:VERSION
#
# deploy/Containerfile builds the same on a machine that reaches a registry.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${AETH_IMAGE_BUILD:-build-image}
version=$(sed -n "s/^ *version : '\([^']*\)'.*/\1/p" meson.build | head -n 1)
tag=${1:-localhost/aether-agent:$version}
stage=$(mktemp -d "/tmp/aeth-image-$$.XXXXXX")
trap 'rm -rf "$stage"' EXIT

command -v podman >/dev/null || {
	echo "image: podman is needed (apt-get install podman runc)" >&2
	exit 1
}
echo "image: building into $build"
[ -f "$build/build.ninja" ] ||
	meson setup "$build" -Dtests=false --buildtype=release --prefix=/usr >/dev/null
nice ninja -C "$build" >/dev/null
DESTDIR="$stage/install" meson install -C "$build" --no-rebuild >/dev/null

root=$stage/root
mkdir -p "$root/usr/bin" "$root/tmp" "$root/etc" "$root/run" "$root/sys" "$root/proc"
chmod 1777 "$root/tmp"
install -m 0755 "$stage/install/usr/sbin/aether-agent" \
	"$stage/install/usr/bin/aetherctl" "$root/usr/bin/"
# the BGP speaker the agent runs (SPEC.md section 7), as in deploy/Containerfile
bird=$(command -v bird || echo /usr/sbin/bird)
[ -x "$bird" ] || { echo "image: bird is needed (apt-get install bird2)" >&2; exit 1; }
install -m 0755 "$bird" "$root/usr/bin/bird"

# the libraries the binaries link, with the loader, at their own paths
for lib in $(ldd "$root/usr/bin/aether-agent" "$root/usr/bin/aetherctl" \
	"$root/usr/bin/bird" |
	grep -oE '/[^ ]+\.so[^ ]*' | sort -u); do
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done
echo "root:x:0:0:root:/:/usr/bin/aether-agent" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"

tar -C "$root" -cf "$stage/rootfs.tar" .
podman import --quiet \
	--change 'ENTRYPOINT ["/usr/bin/aether-agent"]' \
	--change 'CMD ["--help"]' \
	--change 'ENV PATH=/usr/bin' \
	--change "LABEL org.opencontainers.image.version=$version" \
	"$stage/rootfs.tar" "$tag" >/dev/null
size=$(podman image inspect --format '{{.Size}}' "$tag")
echo "image: $tag, $((size / 1024 / 1024)) MiB ($size bytes):" \
	"aether-agent, aetherctl, bird and $(find "$root" -name '*.so*' | wc -l) libraries"
