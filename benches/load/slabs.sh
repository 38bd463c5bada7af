#!/usr/bin/env bash
# Issue 7's slab figures through the real binary: fill N one-page slabs with /add (one
# keep-alive connection, curl), release them all with one /rel, refill, then /reset, and time
# each step and a /add that waits behind the /reset. Needs root and curl.
#
#   sudo benches/load/slabs.sh            # N=80000 (625 MiB in a 1 GiB group)
set -euo pipefail

cd "$(dirname "$0")/../.."
N=${N:-80000}
PORT=${PORT:-18114}
SLAB=8192

[ "$(id -u)" = 0 ] || { echo "slabs: run as root" >&2; exit 2; }
work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release -p memspike -q
target/release/memspike run --interactive --no-trace --limit 1GiB \
  --listen "127.0.0.1:$PORT" 2>"$work/memspike.log" &
pid=$!
base="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -sf -o /dev/null "$base/stats" && break; sleep 0.1; done

for _ in $(seq "$N"); do printf 'url = "%s/add?bytes=%d"\noutput = /dev/null\n' "$base" "$SLAB"; done \
  >"$work/adds"
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }'; }
field() { curl -sf "$base/stats" | tr -d ' \n' | grep -o "\"$1\":[0-9]*" | cut -d: -f2; }

t=$(now); curl -sf -K "$work/adds"; fill=$(took "$t")
slabs=$(field Slabs)
t=$(now); curl -sf -o /dev/null "$base/rel?bytes=$((N * SLAB))"; rel=$(took "$t")
curl -sf -K "$work/adds"
t=$(now)
curl -sf -o /dev/null "$base/reset" &
reset_pid=$!
# Queued behind the /reset on the heap thread.
curl -sf -o /dev/null -w '%{time_total}' "$base/add?bytes=$SLAB" >"$work/queued"
wait "$reset_pid"
reset=$(took "$t")
echo "$N slabs of $SLAB bytes: fill $fill ($slabs held), /rel of all $rel, /reset (refilled) $reset, an /add queued behind it $(cat "$work/queued") s"
