#!/usr/bin/env bash
# Foundation figures for docs/benchmarks.md, on an optimised build:
#  - start -> first GET /health 200 with every actor up (ms), median of N runs
#  - SIGTERM -> exit (ms), median of N runs
#  - CPU used while idle for 10 s (% of one core) and resident memory
# Usage: bench/foundation.sh [runs]   (builds build-release/ if needed)
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$top/bench/lib.sh"
runs=${1:-9}
bin="$top/build-release/viworks-backend"
if [ ! -x "$bin" ]; then
  cmake -S "$top" -B "$top/build-release" -DCMAKE_BUILD_TYPE=Release -DVW_TESTS=OFF >/dev/null
  cmake --build "$top/build-release" -j"$(nproc)" >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

pick_ports() { http=$(port); ws=$(port); admin=$(port); rm -rf "$work/data"; }
start_backend() {
  (cd "$work" && exec "$bin" --http-addr 127.0.0.1 --http-port "$http" --ws-addr 127.0.0.1 \
     --ws-port "$ws" --admin-endpoint "tcp://127.0.0.1:$admin" --events-endpoint off \
     2>"$work/log") &
  pid=$!
}

starts=(); stops=()
for _ in $(seq "$runs"); do
  pick_ports; t0=$(now_ms); start_backend
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http/health")" = 200 ]; do sleep 0.002; done
  starts+=($(( $(now_ms) - t0 )))
  t0=$(now_ms); kill -TERM "$pid"; wait "$pid"; stops+=($(( $(now_ms) - t0 )))
done

pick_ports; start_backend
until curl -sf "http://127.0.0.1:$http/health" >/dev/null 2>&1; do sleep 0.01; done
sleep 1
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK); c0=$(ticks); sleep 10; c1=$(ticks)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
threads=$(ls "/proc/$pid/task" | wc -l)
kill -TERM "$pid"; wait "$pid"

echo "runs: $runs (median)"
echo "start -> /health 200, all actors up: $(printf '%s\n' "${starts[@]}" | median) ms (all: ${starts[*]})"
echo "SIGTERM -> exit 0:                   $(printf '%s\n' "${stops[@]}" | median) ms (all: ${stops[*]})"
echo "idle CPU over 10 s:                  $(awk -v d=$((c1 - c0)) -v hz="$hz" 'BEGIN {printf "%.2f", 100 * d / hz / 10}') % of one core ($((c1 - c0)) ticks)"
echo "idle RSS:                            $rss KiB, $threads threads"
