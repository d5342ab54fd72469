#!/usr/bin/env bash
# Builds the release tarball operators install (make dist):
#   dist/sidecar-executor-<version>-<os>-<arch>.tar.gz and its .sha256
# holding one directory, sidecar-executor-<version>-<os>-<arch>/, with the
# static binary (version stamped), executor.sh, environment.sample (the
# operator's file with every setting commented at its default), README.md
# and SECURITY.md. The archive's owners, order and times are fixed, so the
# same commit built with the same Go gives the same tarball.
#
# Usage: scripts/dist.sh VERSION   (GOOS, GOARCH default to linux, amd64)
set -euo pipefail

version="${1:?usage: scripts/dist.sh VERSION}"
goos="${GOOS:-linux}"
goarch="${GOARCH:-amd64}"
go="${GO:-go}"

# The version becomes a file name and a link-time string.
case "$version" in
'' | *[!A-Za-z0-9._+-]*)
	echo "dist.sh: version \"$version\" must be letters, digits and . _ + - only" >&2
	exit 2
	;;
esac

cd "$(dirname "$0")/.."
name="sidecar-executor-$version-$goos-$goarch"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/$name"

CGO_ENABLED=0 GOOS="$goos" GOARCH="$goarch" "$go" build -trimpath -buildvcs=auto \
	-ldflags "-s -w -X main.version=$version" -o "$stage/$name/sidecar-executor" .
install -m 0755 executor.sh "$stage/$name/executor.sh"
install -m 0644 packaging/environment.sample "$stage/$name/environment.sample"
install -m 0644 README.md SECURITY.md "$stage/$name/"

# The commit's time, so that rebuilding a commit changes nothing.
mtime=$(git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)
mkdir -p dist
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="$mtime" -C "$stage" -cf - "$name" |
	gzip -9 -n >"dist/$name.tar.gz.tmp"
mv "dist/$name.tar.gz.tmp" "dist/$name.tar.gz"
(cd dist && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
echo "dist/$name.tar.gz"
