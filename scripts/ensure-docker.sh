#!/usr/bin/env bash
# Makes sure a Docker engine answers on this machine. When none does, installs
# Debian's docker.io and starts dockerd with settings that work inside
# unprivileged CI sandboxes (vfs storage, no iptables).
set -euo pipefail

if docker info >/dev/null 2>&1; then
	exit 0
fi

echo "no Docker engine answers; installing and starting one" >&2
if ! command -v dockerd >/dev/null 2>&1; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq docker.io >/dev/null
fi

log=/tmp/sidecar-executor-dockerd.log
nohup dockerd --storage-driver=vfs --iptables=false --ip-masq=false >"$log" 2>&1 &

for _ in $(seq 1 60); do
	if docker info >/dev/null 2>&1; then
		exit 0
	fi
	sleep 1
done
echo "dockerd did not start within 60s; its log follows" >&2
tail -n 50 "$log" >&2
exit 1
