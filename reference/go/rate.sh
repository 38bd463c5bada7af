#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# The allocation rate: rate.sh BINARY [RUNS]  (default 5)
# In a 1 GiB group (no pressure), with -limit 512MiB -spike 0.1 -chunk 1MiB, the program
#  - allocates and writes the spike as one slab of 51 MiB (fresh memory);
#  - allocates and writes 460.8 MiB in 1 MiB chunks, each kept (the heap grows: fresh memory);
#  - with -churn, the same chunks dropped once written (memory recycled by the collector).
# Prints MiB/s for each, and the huge pages the cgroup counted at the end of the remainder.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$1 runs=${2:-5}
for mode in kept churn; do
	extra=()
	[[ $mode == churn ]] && extra=(-churn)
	for i in $(seq 1 "$runs"); do
		"$here/run-in-cgroup.sh" 1GiB "$bin" -limit 512MiB -spike 0.1 -chunk 1MiB -chunk-every 1000 "${extra[@]}" 2>/dev/null |
			awk -v mode="$mode" -v run="$i" '
				/^# limit=/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "fill") fill = kv[2] } }
				/^phase=/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); x[kv[1]] = kv[2] }
					t[x["phase"]] = x["t_ms"]; if (x["phase"] == "remainder") { huge = x["cg_rss_huge"]; rss = x["cg_rss"]; gcs = x["NumGC"] } }
				/^# remainder:/ { rate = $(NF-1) }
				END { printf "%-5s run %d: spike slab %.0f MiB/s; remainder in 1 MiB chunks %s MiB/s (NumGC %s at its end); cgroup rss %.0f MiB, of it huge %.0f MiB\n",
					mode, run, fill / 1048576 / ((t["spike"] - t["start"]) / 1000), rate, gcs, rss / 1048576, huge / 1048576 }'
	done
done
