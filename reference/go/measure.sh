#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# Repeats one cell of the outcome grid and prints one summary line per run (and a count).
#
#   measure.sh BINARY RUNS GROUP_LIMIT [ENV=VALUE...] -- [PROGRAM ARGS...]
#   e.g. measure.sh target/ref/memspike-ref-go1.19 10 256MiB GOGC=100 -- -limit 256MiB -spike 0.5 -chunk 1MiB
#
# Each run's full output is kept in $LOGS (default target/ref/logs). Runs one at a time.
# GODEBUG=gctrace=1 is set (unless GODEBUG is given) so that the runtime says, for the first
# collection after the spike, the heap when it started (its trigger, in MiB), after marking,
# the live heap, and its goal: after_spike_gc=start->end->live/goal.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
binary=$1 runs=$2 group_limit=$3
shift 3
envs=()
while [[ $# -gt 0 && $1 != -- ]]; do
	envs+=("$1")
	shift
done
[[ ${1:-} == -- ]] && shift
[[ " ${envs[*]} " == *" GODEBUG="* ]] || envs+=(GODEBUG=gctrace=1)
logs=${LOGS:-$here/../../target/ref/logs}
mkdir -p "$logs"

oom=0 survived=0 other=0
for i in $(seq 1 "$runs"); do
	log=$logs/$(basename "$binary")-$group_limit-$(echo "${envs[*]} $*" | tr -c 'A-Za-z0-9.=-' _)-$i.log
	env "${envs[@]}" "$here/run-in-cgroup.sh" "$group_limit" "$binary" "$@" >"$log" 2>&1 || true
	# One line: how it ended, the phase it last reported, and the figures after the spike.
	line=$(awk '
		/^phase=/ { split($1, p, "="); last = p[2] }
		/^phase=start / { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "cg_usage") su = kv[2]; if (kv[1] == "RssAnon") sr = kv[2] } }
		/^phase=spike / { for (i = 2; i <= NF; i++) { split($i, kv, "="); s[kv[1]] = kv[2] } }
		/^gc [0-9]+ @/ && s["NumGC"] != "" && $2 == s["NumGC"] + 1 && gc == "" {
			for (i = 1; i <= NF; i++) if ($i ~ /->/) heap = $i
			for (i = 1; i <= NF; i++) if ($(i+1) == "MB" && $(i+2) ~ /^goal/) goal = $i
			gc = heap "/" goal (/forced/ ? "(forced)" : "")
		}
		/^result:/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); r[kv[1]] = kv[2] } }
		END {
			printf "status=%s oom_killed=%s last_phase=%s start_cg=%s start_RssAnon=%s spike_HeapAlloc=%s spike_NextGC=%s spike_NumGC=%s spike_cg=%s after_spike_gc=%s max_usage=%s",
				r["status"], r["oom_killed"], last, su, sr, s["HeapAlloc"], s["NextGC"], s["NumGC"], s["cg_usage"], (gc == "" ? "none" : gc), r["max_usage"]
		}' "$log")
	echo "run $i: $line"
	case $line in
	*oom_killed=yes*) oom=$((oom + 1)) ;;
	*status=0\ *) survived=$((survived + 1)) ;;
	*) other=$((other + 1)) ;;
	esac
done
echo "cell: $(basename "$binary") group=$group_limit ${envs[*]} $*: OOM $oom, survived $survived, other $other (of $runs)"
