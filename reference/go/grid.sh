#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
#
# The outcome grid of MEASUREMENTS.md for one binary: grid.sh BINARY [RUNS]  (default 10 runs a cell)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$1 runs=${2:-10}
m=$here/measure.sh
for spike in 0.5 0.55 0.6; do
	"$m" "$bin" "$runs" 256MiB GOGC=100 -- -limit 256MiB -spike "$spike" -chunk 1MiB
done
for spike in 0.8 0.9; do
	"$m" "$bin" "$runs" 256MiB GOGC=100 GOMEMLIMIT=241591910 -- -limit 256MiB -spike "$spike" -chunk 1MiB
done
"$m" "$bin" "$runs" 32MiB -- -limit 32MiB
"$m" "$bin" "$runs" 32MiB -- -limit 32MiB -spike 0.95
