#!/bin/sh
# executor.sh: the command a Mesos task names as its custom executor.
#
# It runs a copy of the installed sidecar-executor binary that lives outside
# every container's view, so the installed binary can be upgraded while tasks
# run (each task keeps the binary it started with) and nothing a container
# can write is ever executed here. If the executor dies without cleaning up
# (a crash, a SIGKILL aimed at it alone), the wrapper has that same copy stop
# and remove the task's container, found by the labels the executor put on
# it, so that nothing runs without an executor watching it.
#
# Trust: the task sandbox is mounted read-write into the container, and the
# executor's environment is the task author's. So this script reads no file
# and honours no variable that names a file or a binary: the two paths below
# are the operator's, fixed at install time. Host-wide settings go in
# /etc/sidecar-executor/environment, which the binary itself reads, as it
# reads upstream's /opt/mesos/executor-environment.sh: as data, never sourced.
set -u

# The tests rewrite these two lines (and only these) to point at temporary
# directories; keep each on a line of its own.
readonly installed_binary=/opt/mesos/sidecar-executor
readonly state_dir=/var/lib/sidecar-executor

umask 022
# Commands are found in the system's directories only: the inherited PATH is
# the task author's, and could name the sandbox (a relative entry is
# relative to it), where the container writes.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

say() {
	printf '%s executor.sh: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

sha256_of() {
	sha256sum <"$1" | cut -d ' ' -f 1
}

if [ ! -f "$installed_binary" ]; then
	say "error: no sidecar-executor binary at $installed_binary; install it there"
	exit 127
fi

# shared_copy prints the path of a content-addressed copy of the installed
# binary in $state_dir/bin, making it when needed. Copies are named by their
# SHA-256, so every executor of one version shares one file (and its pages),
# and an upgrade makes a new file instead of changing one a task runs.
shared_copy() {
	bin_dir="$state_dir/bin"
	wanted=$(sha256_of "$installed_binary") || return 1
	[ -n "$wanted" ] || return 1
	copy="$bin_dir/sidecar-executor-$wanted"
	if [ -f "$copy" ] && [ ! -L "$copy" ] && [ "$(sha256_of "$copy")" = "$wanted" ]; then
		printf '%s\n' "$copy"
		return 0
	fi
	# umask 022 makes both directories 0755: readable by everyone,
	# writable only by the operator's user.
	mkdir -p "$bin_dir" 2>/dev/null || return 1
	temporary="$bin_dir/.sidecar-executor.$$.tmp"
	rm -f "$temporary"
	if ! cp "$installed_binary" "$temporary" 2>/dev/null || ! chmod 0755 "$temporary"; then
		rm -f "$temporary"
		return 1
	fi
	# Name the copy by what was copied: an upgrade in the middle of the
	# copy must not leave a file whose name lies about its content.
	copied=$(sha256_of "$temporary")
	if [ -z "$copied" ]; then
		rm -f "$temporary"
		return 1
	fi
	copy="$bin_dir/sidecar-executor-$copied"
	if ! mv -f "$temporary" "$copy"; then
		rm -f "$temporary"
		return 1
	fi
	printf '%s\n' "$copy"
}

if binary=$(shared_copy); then
	say "running $binary (a copy of $installed_binary)"
else
	binary="$installed_binary"
	say "warning: cannot make a copy of $installed_binary in $state_dir/bin (running as an unprivileged user?); running the installed binary directly, so replacing it while tasks run affects them"
fi

# forward passes a signal on to the executor; one that arrives before the
# executor is started is passed on as soon as it is. interrupted tells the
# wait loop below that its wait ended because of the signal, not the
# executor.
child=
pending=
interrupted=0
# shellcheck disable=SC2317 # called from the traps below
forward() {
	interrupted=1
	if [ -n "$child" ]; then
		kill "-$1" "$child" 2>/dev/null
	else
		pending=$1
	fi
}
trap 'forward TERM' TERM
trap 'forward INT' INT
trap 'forward HUP' HUP

# A random instance ID, given to the executor (which labels its containers
# with it) and to the cleanup (which stops only containers carrying it). The
# MESOS_* IDs alone would not do: the task's environment can override them,
# and a cleanup under another executor's IDs would stop its containers.
instance=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
if [ "${#instance}" -ne 32 ]; then
	say "error: cannot read a random instance ID from /dev/urandom"
	exit 71
fi
SIDECAR_EXECUTOR_INSTANCE=$instance
export SIDECAR_EXECUTOR_INSTANCE

"$binary" "$@" &
child=$!
if [ -n "$pending" ]; then
	kill "-$pending" "$child" 2>/dev/null
fi

# wait returns early when a trapped signal arrives; wait again until the
# executor has really exited. Whether it has is what wait says, never
# whether its PID still answers: once reaped, that PID may belong to anyone.
status=
while :; do
	interrupted=0
	wait "$child"
	result=$?
	# 127: the executor was reaped by the previous wait, which a trapped
	# signal arriving just after it made look interrupted.
	if [ "$result" -eq 127 ] && [ -n "$status" ]; then
		break
	fi
	status=$result
	[ "$interrupted" -eq 1 ] || break
done
# The executor is gone: there is nobody to forward signals to any more.
trap : TERM INT HUP

# The executor exits 0 only after removing its container. Any other end
# (a crash, SIGKILL, an error) may have left the container running.
if [ "$status" -ne 0 ]; then
	say "the executor exited ($status); making sure no container of it is left running"
	"$binary" cleanup || say "error: cleanup of the executor's container failed"
fi
exit "$status"
