#!/bin/sh
# executor.sh: the command a Mesos task names as its custom executor.
#
# It copies the sidecar-executor binary into the task sandbox and runs the
# copy, so the installed binary can be upgraded while tasks run: each task
# keeps the copy it started with. If the executor dies without cleaning up
# (a crash, a SIGKILL aimed at it alone), the wrapper stops the task's
# container so that nothing runs without an executor watching it.
#
# SIDECAR_EXECUTOR_PATH      binary to copy (default /opt/mesos/sidecar-executor)
# SIDECAR_EXECUTOR_SITE_ENV  optional file of VAR=value lines sourced first
#                            (default /etc/sidecar-executor/environment)
set -u

binary="${SIDECAR_EXECUTOR_PATH:-/opt/mesos/sidecar-executor}"
site_env="${SIDECAR_EXECUTOR_SITE_ENV:-/etc/sidecar-executor/environment}"
sandbox="${MESOS_SANDBOX:-${MESOS_DIRECTORY:-$PWD}}"

say() {
	printf '%s executor.sh: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

if [ -f "$site_env" ]; then
	if [ ! -r "$site_env" ]; then
		say "error: site environment file $site_env is not readable"
		exit 78
	fi
	set -a
	# shellcheck disable=SC1090
	. "$site_env"
	set +a
	binary="${SIDECAR_EXECUTOR_PATH:-$binary}"
fi

if [ ! -f "$binary" ]; then
	say "error: no sidecar-executor binary at $binary; install it there or set SIDECAR_EXECUTOR_PATH"
	exit 127
fi
if [ ! -d "$sandbox" ] || [ ! -w "$sandbox" ]; then
	say "error: the task sandbox $sandbox is not a writable directory"
	exit 73
fi

copy="$sandbox/sidecar-executor"
if ! cp "$binary" "$copy.$$" || ! chmod 0755 "$copy.$$" || ! mv -f "$copy.$$" "$copy"; then
	rm -f "$copy.$$"
	say "error: could not copy $binary to $copy"
	exit 73
fi

"$copy" "$@" &
child=$!
forward() {
	kill "-$1" "$child" 2>/dev/null
}
trap 'forward TERM' TERM
trap 'forward INT' INT
trap 'forward HUP' HUP

# wait returns early when a trapped signal arrives; keep waiting until the
# executor itself is gone.
while :; do
	wait "$child"
	status=$?
	kill -0 "$child" 2>/dev/null || break
done

# The executor records its container while one exists and removes the record
# after removing the container; a record left behind means it died first.
if [ -f "$sandbox/.sidecar-executor-container" ]; then
	say "the executor exited ($status) without cleaning up its container; stopping it"
	"$copy" cleanup || say "error: cleanup of the container failed"
fi
exit "$status"
