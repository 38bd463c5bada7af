#!/usr/bin/env bash
# Side-by-side load figures: memspike's interactive server, run as users run it (the release
# binary through its supervisor, `memspike run --interactive --no-trace --limit 64MiB`), and a
# seed-like Go server (benches/load/seed_server.go) in a 64 MiB memory cgroup of its own, on
# this machine, under the same wrk load. Needs root, wrk and go (Debian: `apt-get install -y
# wrk golang-go`). Prints one table.
#
#   sudo benches/load/run.sh                 # 15 s per run, 2 rounds
#   DURATION=30 ROUNDS=3 sudo benches/load/run.sh
set -euo pipefail

cd "$(dirname "$0")/../.."
DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
MEMSPIKE_PORT=${MEMSPIKE_PORT:-18112}
GO_PORT=${GO_PORT:-18113}
LIMIT_BYTES=$((64 << 20))

die() { echo "load: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "run as root: memspike creates a memory cgroup"
command -v wrk >/dev/null || die "wrk is missing: apt-get install -y wrk"
command -v go >/dev/null || die "go is missing: apt-get install -y golang-go"
command -v curl >/dev/null || die "curl is missing: apt-get install -y curl"

work=$(mktemp -d)
memspike_pid=""
go_pid=""
go_group=""
cleanup() {
  [ -n "$memspike_pid" ] && kill -INT "$memspike_pid" 2>/dev/null && wait "$memspike_pid" 2>/dev/null || true
  [ -n "$go_pid" ] && kill "$go_pid" 2>/dev/null && wait "$go_pid" 2>/dev/null || true
  [ -n "$go_group" ] && rmdir "$go_group" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "load: building memspike (release) and the Go server" >&2
cargo build --release -p memspike -q
go build -o "$work/seed_server" benches/load/seed_server.go

# A 64 MiB group for the Go server, under our own memory group, with swap capped as memspike
# does (v1: memsw = limit; v2: swap.max = 0).
if own=$(awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup) && [ -n "$own" ] \
    && [ -d "/sys/fs/cgroup/memory$own" ]; then
  go_group="/sys/fs/cgroup/memory$own/loadbench-go-$$"
  mkdir "$go_group"
  echo "$LIMIT_BYTES" >"$go_group/memory.limit_in_bytes"
  echo "$LIMIT_BYTES" >"$go_group/memory.memsw.limit_in_bytes"
elif own=$(awk -F: '$1 == "0" { print $3 }' /proc/self/cgroup) \
    && grep -qw memory "/sys/fs/cgroup$own/cgroup.subtree_control" 2>/dev/null; then
  go_group="/sys/fs/cgroup$own/loadbench-go-$$"
  mkdir "$go_group"
  echo "$LIMIT_BYTES" >"$go_group/memory.max"
  echo 0 >"$go_group/memory.swap.max"
else
  die "no memory cgroup to put the Go server in"
fi

target/release/memspike run --interactive --no-trace --limit 64MiB \
  --listen "127.0.0.1:$MEMSPIKE_PORT" 2>"$work/memspike.log" &
memspike_pid=$!
sh -c 'echo $$ >"$1/cgroup.procs" && exec "$2" -listen "$3"' sh "$go_group" \
  "$work/seed_server" "127.0.0.1:$GO_PORT" 2>"$work/go.log" &
go_pid=$!

wait_up() {
  for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$1/stats" && return 0
    sleep 0.1
  done
  die "nothing answers on port $1 (logs: $work)"
}
wait_up "$MEMSPIKE_PORT"
wait_up "$GO_PORT"

# wrk's figures: requests/s, p50, p99 (in ms) and non-2xx answers.
measure() {
  local port=$1 script=$2 out
  if [ -n "$script" ]; then
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$script" \
      "http://127.0.0.1:$port/")
  else
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency \
      "http://127.0.0.1:$port/stats")
  fi
  echo "$out" | awk '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
      return v
    }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /Requests\/sec:/ { rps = $2 }
    /Non-2xx/ { bad = $NF }
    END { printf "%.0f %.2f %.2f %d\n", rps, p50, p99, bad }'
}

rows=()
for round in $(seq "$ROUNDS"); do
  for workload in stats mix; do
    script=""
    [ "$workload" = mix ] && script=benches/load/mix.lua
    for server in go memspike; do
      port=$GO_PORT
      [ "$server" = memspike ] && port=$MEMSPIKE_PORT
      echo "load: round $round, $server, $workload" >&2
      rows+=("$round $workload $server $(measure "$port" "$script")")
    done
  done
done

after=$(curl -sf "http://127.0.0.1:$MEMSPIKE_PORT/stats")
echo
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency; $(nproc) CPUs; $(uname -r)"
printf '%-5s %-8s %-9s %10s %9s %9s %8s\n' round workload server 'req/s' 'p50 ms' 'p99 ms' 'non-2xx'
for row in "${rows[@]}"; do
  # shellcheck disable=SC2086
  printf '%-5s %-8s %-9s %10s %9s %9s %8s\n' $row
done
echo
echo "memspike after the runs: $(echo "$after" | tr -d ' \n' | grep -o '"\(Restarts\|OomKills\|NumGC\|Live\)":[0-9]*' | tr '\n' ' ')"
