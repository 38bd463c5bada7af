#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# Runs a prebuilt program in a fresh cgroup v1 memory group whose memory and memory+swap limits
# are both LIMIT (so no swap), then says how it ended and whether the kernel OOM-killed it, and
# removes the group.
#
#   run-in-cgroup.sh LIMIT BINARY [ARGS...]
#
# LIMIT is in bytes or with a binary unit (32MiB, 32M, 256MiB). The environment (GOGC,
# GOMEMLIMIT, ...) is passed on. The group is memspike-ref-$$, a child of this script's own
# memory group. The binary is read once before it starts, so its page cache is charged outside
# the group. TIMEOUT (seconds, default 60) stops a run that neither ends nor dies.
#
# The last line is the result, e.g.
#   result: status=137 oom_kill=1 oom_killed=yes max_usage=33554432 failcnt=0 limit=33554432 wall_ms=310
set -euo pipefail

if [[ $# -lt 2 ]]; then
	echo "usage: $0 LIMIT BINARY [ARGS...]   (as root, on a cgroup v1 memory controller)" >&2
	exit 2
fi
limit_text=$1
binary=$2
shift 2

to_bytes() {
	local text=${1^^} number unit
	if [[ ! $text =~ ^([0-9]+)(B|K|KB|KIB|M|MB|MIB|G|GB|GIB)?$ ]]; then
		echo "$0: limit '$1' is not a size; write bytes or e.g. 32MiB" >&2
		exit 2
	fi
	number=${BASH_REMATCH[1]}
	unit=${BASH_REMATCH[2]}
	case $unit in
	"" | B) echo "$number" ;;
	K*) echo $((number << 10)) ;;
	M*) echo $((number << 20)) ;;
	G*) echo $((number << 30)) ;;
	esac
}
limit=$(to_bytes "$limit_text")

if [[ ! -x $binary ]]; then
	echo "$0: '$binary' is not an executable file; build it first (see MEASUREMENTS.md)" >&2
	exit 2
fi

# The v1 memory hierarchy's mount point and this process's group in it.
mount=$(awk '$0 ~ / - cgroup / && $NF ~ /(^|,)memory(,|$)/ && $4 == "/" { print $5; exit }' /proc/self/mountinfo)
own=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3; exit }' /proc/self/cgroup)
if [[ -z $mount || -z $own ]]; then
	echo "$0: no cgroup v1 memory controller is mounted" >&2
	exit 2
fi
if [[ ! -e $mount$own/memory.memsw.limit_in_bytes ]]; then
	echo "$0: swap is not accounted; boot with 'cgroup_enable=memory swapaccount=1'" >&2
	exit 2
fi
group=${mount}${own%/}/memspike-ref-$$

child=
cleanup() {
	if [[ -n $child ]] && kill -0 "$child" 2>/dev/null; then
		kill -KILL "$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	if [[ -d $group ]]; then
		# The tasks are gone once waited for; rmdir can still race their exit for a moment.
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			rmdir "$group" 2>/dev/null && break
			sleep 0.1
		done
		[[ -d $group ]] && echo "$0: could not remove $group" >&2
	fi
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir "$group"
echo "$limit" >"$group/memory.limit_in_bytes"
echo "$limit" >"$group/memory.memsw.limit_in_bytes"
for f in memory.limit_in_bytes memory.memsw.limit_in_bytes; do
	got=$(cat "$group/$f")
	if [[ $got != "$limit" ]]; then
		echo "$0: $f reads $got, not $limit (limits are whole pages: give a multiple of 4096)" >&2
		exit 2
	fi
done

# Its text is cached now, charged to this script's group, not to the experiment's.
cat "$binary" >/dev/null

oom_before=$(awk '$1 == "oom_kill" { print $2 }' "$group/memory.oom_control")
started=$(date +%s%N)
# The child shell joins the group, then becomes the binary: only the binary's memory is charged.
timeout "${TIMEOUT:-60}" sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$group" "$binary" "$@" &
child=$!
set +e
wait "$child"
status=$?
set -e
child=
wall_ms=$((($(date +%s%N) - started) / 1000000))

oom_after=$(awk '$1 == "oom_kill" { print $2 }' "$group/memory.oom_control")
oom_kill=$((oom_after - oom_before))
oom_killed=no
((oom_kill > 0)) && oom_killed=yes
timed_out=no
((status == 124)) && timed_out=yes
echo "result: status=$status oom_kill=$oom_kill oom_killed=$oom_killed timed_out=$timed_out" \
	"max_usage=$(cat "$group/memory.max_usage_in_bytes")" \
	"memsw_max_usage=$(cat "$group/memory.memsw.max_usage_in_bytes")" \
	"failcnt=$(cat "$group/memory.failcnt")" "limit=$limit" \
	"cache_left=$(awk '$1 == "cache" { print $2 }' "$group/memory.stat")" "wall_ms=$wall_ms"
