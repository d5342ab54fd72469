#!/usr/bin/env bash
# Builds the image the tests and the demo run: a static busybox from Debian's
# busybox-static package, imported into the local Docker engine. No registry
# is involved, so it works on a machine whose engine has never pulled anything.
set -euo pipefail

image="${1:-sidecar-executor/busybox:1.35}"

if docker image inspect "$image" >/dev/null 2>&1; then
	exit 0
fi

work=$(mktemp -d)
chmod 0777 "$work" # apt-get download runs as _apt and writes here
trap 'rm -rf "$work"' EXIT

(cd "$work" && apt-get download busybox-static >/dev/null)
deb=$(ls "$work"/busybox-static_*.deb)
dpkg-deb -x "$deb" "$work/pkg"

root="$work/rootfs"
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/proc" "$root/sys" "$root/dev"
cp "$work/pkg/bin/busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
	[ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
chmod 1777 "$root/tmp"

tar -C "$root" -c . | docker import \
	--change 'ENV PATH=/bin' \
	--change 'CMD ["/bin/sh"]' \
	- "$image" >/dev/null
echo "built $image"
