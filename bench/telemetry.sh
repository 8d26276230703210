#!/usr/bin/env bash
# Telemetry benchmark for docs/benchmarks.md (issue 11). 1,000 simulated
# agents (viworks-agent --simulate, msgpack, points spread over the interval
# the way a real fleet's arrive) stream telemetry frames; the figures:
#  - saturation: metric values/s durable and acked (every agent takes a
#    point of M metrics each 100 ms, 10 points a frame: 10,000 x M values/s
#    offered), from the agent's own count of acks over a steady window;
#    backend and agent CPU meanwhile;
#  - the raw limits, same run: telemetry-sink (an lws server on libev that
#    parses each frame as the edge does and acks it at once, storing
#    nothing) under the same load, and telemetry-sqlite (a plain C loop
#    inserting the same packed frames into a table of the same shape, 100
#    frames a transaction); ours as a fraction of each;
#  - ack latency (agent side, from each frame's send to its ack) at half the
#    saturation rate: the median over the window of the 5-s p99s;
#  - bytes on disk per stored value with the 12 gateway-like metrics, a
#    point a second per agent, 10 a frame, for DISK_S seconds: the raw tier
#    (frames, their index, the stored seqs) and all telemetry tables
#    (roll-ups too), from SQLite's dbstat after a clean stop;
#  - query latency (bench/telemetry_history.py): one agent's 7 days of 12
#    metrics at one point per 10 s, then the 1-hour raw query of one metric
#    and the 7-day 1-hour-bucket query, median and p99 over 50 each.
# One line per run and server, then medians and ratios. Figures only.
#
# Usage: bench/telemetry.sh [runs=3]
# Environment (optional): VW_BENCH_M (metrics per point at saturation,
# default 100), VW_BENCH_WINDOW_S (measuring window, default 15),
# VW_BENCH_DISK_S (default 60).
# Builds build-release/ with -DVW_BENCH=ON; installs python3-zmq and
# python3-websocket with apt-get if missing. Loopback only.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${1:-3}
N=1000
M=${VW_BENCH_M:-100}
window_s=${VW_BENCH_WINDOW_S:-15}
disk_s=${VW_BENCH_DISK_S:-60}
warm_s=10
py=/usr/bin/python3
for v in "$runs" "$M" "$window_s" "$disk_s"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/telemetry.sh [runs=3]" >&2; exit 2; }
done

. "$top/bench/lib.sh"
bench_need py:zmq:python3-zmq py:websocket:python3-websocket
bench_build -DVW_BENCH=ON
backend="$top/build-release/viworks-backend"
agent="$top/build-release/viworks-agent"
sink="$top/build-release/telemetry-sink"
sqlite_loop="$top/build-release/telemetry-sqlite"
bench_nofile "$N"
bench_workdir telemetry
hz=$(getconf CLK_TCK)
admin() { "$py" "$top/bench/admin.py" "tcp://127.0.0.1:$admin_port" "$@"; }

start_backend() { # fresh database; sets server, http_port, ws_port, admin_port
  http_port=$(port); ws_port=$(port); admin_port=$(port)
  rm -rf "$work/backend"; mkdir -p "$work/backend"
  (cd "$work/backend" && exec "$backend" --http-addr 127.0.0.1 --http-port "$http_port" \
    --ws-addr 127.0.0.1 --ws-port "$ws_port" --admin-endpoint "tcp://127.0.0.1:$admin_port" \
    --events-endpoint off --log-level warn \
    --ratelimit-hello-rate 100000 --ratelimit-hello-burst 100000 2>"$work/backend.log") &
  server=$!
  pids+=("$server")
  bench_wait_health "$http_port" || echo "  the backend did not answer /health in 5 s" >&2
  admin register "$N" tm- "$work/tokens"
}

# fleet WS_PORT M MS BATCH: the agents, in the background (apid).
fleet() {
  "$agent" --url "ws://127.0.0.1:$1/ws/agent" --simulate "$N" --id-prefix tm- \
    --token-file "$work/tokens" --format msgpack --ramp 5000 --telemetry-ms "$3" \
    --telemetry-batch "$4" --telemetry-metrics "$2" --log-format text 2>"$work/agent.log" &
  apid=$!
  pids+=("$apid")
}

# window T0 VALUES_PER_FRAME: from the agent's summary lines written at or
# after T0 (ms), acked values/s between the first and the last of them and
# the median of their 5-s ack p99s: "rate p99".
window() {
  "$py" - "$work/agent.log" "$1" "$2" <<'PY'
import datetime, re, sys
t0, per, rows = int(sys.argv[2]), int(sys.argv[3]), []
for line in open(sys.argv[1]):
    m = re.match(r'(\S+) .*acked (\d+), refused \d+, ack p50 (-?\d+) ms p99 (-?\d+) ms', line)
    if m:
        t = datetime.datetime.strptime(m.group(1), '%Y-%m-%dT%H:%M:%S.%fZ')
        ms = int(t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)
        if ms >= t0:
            rows.append((ms, int(m.group(2)), int(m.group(4))))
if len(rows) < 2:
    print("0 -1")
else:
    p99 = sorted(r[2] for r in rows[1:])
    print("%.0f %d" % ((rows[-1][1] - rows[0][1]) * per * 1000 / (rows[-1][0] - rows[0][0]), p99[len(p99) // 2]))
PY
}

# measure SERVER_PID VALUES_PER_FRAME: after the warm-up, acked values/s
# over the window, the median p99, and both processes' CPU; sets rate,
# p99, cpu_srv, cpu_agent.
measure() {
  sleep "$warm_s"
  local t0 s0 a0 s1 a1
  t0=$(now_ms); s0=$(ticks "$1"); a0=$(ticks "$apid")
  sleep "$window_s"
  s1=$(ticks "$1"); a1=$(ticks "$apid")
  cpu_srv=$(calc "100 * $((s1 - s0)) / $hz / $window_s" 0)
  cpu_agent=$(calc "100 * $((a1 - a0)) / $hz / $window_s" 0)
  sleep 5.2  # the summary line that closes the window
  read -r rate p99 <<<"$(window "$t0" "$2")"
}

declare -A fig
echo "commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown); CPU in % of one core"
echo "$(nproc) CPUs, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ); $N agents, msgpack"
per=$((10 * M))
for run in $(seq "$runs"); do
  echo "run $run"
  # --- ours at saturation --------------------------------------------------
  start_backend
  fleet "$ws_port" "$M" 100 10
  measure "$server" "$per"
  stop "$apid"
  fig[ours]+="$rate "
  printf '  %-16s %9d values/s acked (offered %d)  CPU server %3d %%, agent %3d %%\n' viworks-backend \
    "$rate" "$((N * 10 * M))" "$cpu_srv" "$cpu_agent"
  ours_rate=$rate
  stop "$server"
  # --- half the saturation rate, on a fresh backend -------------------------
  # Two latencies: the agents' (send -> ack, as a fleet sees it, load
  # generator included) and the backend's own (frame in at the telemetry
  # actor -> its commit, GET /statistics ack_p99_ms: since the start, so
  # of this phase only).
  half_m=$((ours_rate / 2 / (N * 10)))
  ((half_m < 1)) && half_m=1
  start_backend
  api_token=$(admin token)
  fleet "$ws_port" "$half_m" 100 10
  measure "$server" "$((10 * half_m))"
  stop "$apid"
  srv_p99=$(curl -sf "http://127.0.0.1:$http_port/statistics" -H "authorization: Bearer $api_token" |
    "$py" -c 'import json,sys; print(json.load(sys.stdin)["telemetry"]["ack_p99_ms"])')
  fig[p99]+="$p99 "
  fig[srv_p99]+="$srv_p99 "
  printf '  %-16s %9d values/s acked at half load (M=%d): ack p99 %s ms at the agents (median of 5-s windows), %s ms in the backend\n' \
    viworks-backend "$rate" "$half_m" "$p99" "$srv_p99"
  stop "$server"
  # --- the parse limit: telemetry-sink ---------------------------------------
  sink_port=$(port)
  "$sink" "$sink_port" >"$work/sink.out" 2>&1 &
  spid=$!
  pids+=("$spid")
  sleep 0.3
  fleet "$sink_port" "$M" 100 10
  measure "$spid" "$per"
  stop "$apid"
  fig[sink]+="$rate "
  printf '  %-16s %9d values/s acked   CPU server %3d %%, agent %3d %%\n' telemetry-sink "$rate" \
    "$cpu_srv" "$cpu_agent"
  # The same half load against the sink: what the agents' latency is
  # without any storage behind the acks.
  fleet "$sink_port" "$half_m" 100 10
  measure "$spid" "$((10 * half_m))"
  stop "$apid"
  stop "$spid"
  fig[sink_p99]+="$p99 "
  printf '  %-16s %9d values/s acked at half load (M=%d): ack p99 %s ms at the agents\n' \
    telemetry-sink "$rate" "$half_m" "$p99"
  # --- the storage limit: telemetry-sqlite -----------------------------------
  line=$("$sqlite_loop" "$work/sqlite.db" "$N" "$M" 10 100 "$window_s")
  sq=$(sed -n 's/.*values_per_s=\([0-9]*\).*/\1/p' <<<"$line")
  fig[sqlite]+="$sq "
  printf '  %-16s %9d values/s (%s)\n' telemetry-sqlite "$sq" "$line"
done

# --- bytes per value, realistic metrics --------------------------------------
start_backend
fleet "$ws_port" 12 1000 10
sleep "$disk_s"
stop "$apid"
stop "$server"
disk=$("$py" - "$work/backend/data/viworks.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
size = dict(db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
frames = db.execute("SELECT count(*) FROM telemetry_frames").fetchone()[0]
values = frames * 10 * 12
raw = sum(size.get(n, 0) for n in ("telemetry_frames", "telemetry_frames_tid_ts", "telemetry_seqs"))
rollups = sum(size.get(n, 0) for n in ("telemetry_1m", "telemetry_1h", "sqlite_autoindex_telemetry_series_1",
                                       "telemetry_series", "telemetry_agents", "sqlite_autoindex_telemetry_agents_1"))
print(f"{values} {raw / values:.2f} {(raw + rollups) / values:.2f} {raw} {rollups}")
PY
)
read -r d_values d_raw d_all d_rawbytes d_rollbytes <<<"$disk"

# --- queries -----------------------------------------------------------------
start_backend
api_token=$(admin token)
read -r hid htoken <<<"$(head -1 "$work/tokens")"
queries=$("$py" "$top/bench/telemetry_history.py" "$ws_port" "$http_port" "$hid" "$htoken" "$api_token" 50)
stop "$server"

m() { echo "${fig[$1]}" | tr ' ' '\n' | grep . | median; }
ours=$(m ours); sinkm=$(m sink); sq=$(m sqlite); p99=$(m p99); srv_p99=$(m srv_p99); sink_p99=$(m sink_p99)
echo
echo "medians over $runs run(s):"
printf '  %-44s %12s   %s\n' "values/s durable and acked (1,000 agents)" "$ours" "target >= 200,000; moonshot >= 1,000,000"
printf '  %-44s %12s   ours/sink %s (target >= 0.5)\n' "parse limit: telemetry-sink" "$sinkm" "$(calc "$ours / $sinkm" 2)"
printf '  %-44s %12s   ours/sqlite %s (target >= 0.5)\n' "storage limit: telemetry-sqlite" "$sq" "$(calc "$ours / $sq" 3)"
printf '  %-44s %12s   target < 100 ms; moonshot < 20 ms\n' "ack p99 at half saturation, backend (ms)" "$srv_p99"
printf '  %-44s %12s   (the sink under the same load: %s ms)\n' "ack p99 at half saturation, at the agents (ms)" "$p99" "$sink_p99"
printf '  %-44s %12s   target <= 8 B; moonshot <= 2 B (%s values; raw %s B, roll-ups %s B)\n' \
  "bytes/value on disk, raw tier" "$d_raw" "$d_values" "$d_rawbytes" "$d_rollbytes"
printf '  %-44s %12s\n' "bytes/value on disk, with roll-ups" "$d_all"
sed 's/^/  /' <<<"$queries"
echo "  query targets: raw 1 h < 10 ms (moonshot < 2); 7-day 1-h buckets < 20 ms (moonshot < 5)"
