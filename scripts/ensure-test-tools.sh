#!/usr/bin/env bash
# Installs the Debian packages some tests drive for real when they are
# missing: strace and unshare (util-linux) for executor.sh's PID-reuse test,
# rsyslogd (rsyslog, in /usr/sbin) as the log relay's collector.
# Under CI=true a test whose tool is missing fails, so CI runs this first.
set -euo pipefail

missing=()
command -v strace >/dev/null 2>&1 || missing+=(strace)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
PATH="$PATH:/usr/sbin" command -v rsyslogd >/dev/null 2>&1 || missing+=(rsyslog)
if [ "${#missing[@]}" -eq 0 ]; then
	exit 0
fi
echo "installing test tools: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
