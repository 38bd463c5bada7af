#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# The runtime's own footprint: footprint.sh BINARY [RUNS]  (default 5)
# Runs the program in a 1 GiB group (no memory pressure) with spikes of about 32, 128 and 230 MiB
# (-limit 36/142/256 MiB, spike 0.9) and prints, per run, at start and after the spike:
# the cgroup's usage, RssAnon, the heap's resident part (HeapSys - HeapReleased), and the
# runtime's non-heap memory (Sys - HeapSys) with each *Sys field. All in KiB.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$1 runs=${2:-5}
printf "%-8s %-6s %4s %10s %9s %9s %9s %9s %10s %10s %8s %8s %8s %8s %8s %8s\n" \
	limit phase run heap_MiB cg_KiB RssAnon heapRes nonheap cg-heapRes Rss-heapRes StackSys MSpanSys MCacheSys GCSys OtherSys BuckHash
for limit in 36MiB 142MiB 256MiB; do
	for i in $(seq 1 "$runs"); do
		"$here/run-in-cgroup.sh" 1GiB "$bin" -limit "$limit" 2>/dev/null |
			awk -v limit="$limit" -v run="$i" '/^phase=(start|spike) / {
				for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
				res = v["HeapSys"] - v["HeapReleased"]
				printf "%-8s %-6s %4d %10.1f %9d %9d %9d %9d %10d %10d %8d %8d %8d %8d %8d %8d\n", limit, v["phase"], run,
					v["HeapAlloc"] / 1048576, v["cg_usage"] / 1024, v["RssAnon"] / 1024, res / 1024,
					(v["Sys"] - v["HeapSys"]) / 1024, (v["cg_usage"] - res) / 1024, (v["RssAnon"] - res) / 1024,
					v["StackSys"] / 1024, v["MSpanSys"] / 1024, v["MCacheSys"] / 1024, v["GCSys"] / 1024,
					v["OtherSys"] / 1024, v["BuckHashSys"] / 1024 }'
	done
done
