#!/usr/bin/env bash
# Reconnect-storm benchmark for docs/benchmarks.md: N simulated agents
# (viworks-agent --simulate, source addresses 127.0.0.1-250) are online; the
# server is stopped with SIGTERM and started again at once on the same ports;
# every agent reconnects (its own backoff with full jitter, and the server's
# retry_after_ms when it refuses a hello with 1013). Measured per run:
#  - the old backend's shutdown: time from SIGTERM to exit, exit status (the
#    issue's bar: exit 0 within 5 s with N agents connected);
#  - time from the new server accepting connections until all N agents are
#    online again (the agent's --ready-file, rewritten each time all are
#    online together, carries the wall-clock time);
#  - REST latency meanwhile: one keep-alive client sends an authenticated
#    GET /agents/{id} every 20 ms from the restart until all are online,
#    measuring each answer (p50, p99, max, non-200 count);
#  - hellos refused with 1013 (the edge's health detail, admin op
#    actors.status) and the server's
#    CPU during the storm.
# Baseline, same run: Debian's libwebsockets-test-server, same fleet with
# --raw (no hello: online = WebSocket open), restarted the same way (it has
# no SIGTERM handler; its restart costs nothing but the new process).
# Figures only: nothing is asserted.
#
# Usage: bench/storm.sh [N=10000] [runs=3]
# Environment (optional): VW_BENCH_RAMP (first connection ramp, agents/s,
# default 5000), VW_BENCH_PENDING (--ws-max-pending-hellos, default: the
# backend's).
# Builds build-release/ (incremental); installs python3-zmq and
# libwebsockets-test-server with apt-get if missing. Loopback only.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${1:-10000}
runs=${2:-3}
ramp=${VW_BENCH_RAMP:-5000}
pending=${VW_BENCH_PENDING:-}
online_limit=120 # seconds allowed for all N to come online (each time)
py=/usr/bin/python3
testserver=/usr/bin/libwebsockets-test-server
for v in "$N" "$runs" "$ramp"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/storm.sh [N=10000] [runs=3]" >&2; exit 2; }
done
[ -z "$pending" ] || [[ $pending =~ ^[1-9][0-9]*$ ]] || { echo "VW_BENCH_PENDING: a number" >&2; exit 2; }

. "$top/bench/lib.sh"
bench_need py:zmq:python3-zmq "$testserver:libwebsockets-test-server"
bench_build
backend="$top/build-release/viworks-backend"
agent="$top/build-release/viworks-agent"
bench_nofile "$N"
bench_workdir storm
hz=$(getconf CLK_TCK)
admin() { "$py" "$top/bench/admin.py" "tcp://127.0.0.1:$admin_port" "$@"; }

# REST prober: GET URL with a bearer token every 20 ms on one keep-alive
# connection until FILE says round 2 (or the limit); prints "p50 p99 max
# count bad" in ms. A refused or broken connection counts as bad and is
# opened again.
cat >"$work/probe.py" <<'EOF'
import http.client, os, sys, time
host, port, path, token, ready, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6])
lat, bad, conn, t_end = [], 0, None, time.monotonic() + limit
def done():
    try:
        with open(ready) as f:
            return "(round 2," in f.read()
    except OSError:
        return False
while time.monotonic() < t_end and not done():
    t0 = time.perf_counter()
    try:
        if conn is None:
            conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("GET", path, headers={"Authorization": "Bearer " + token})
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            bad += 1
    except Exception:
        bad += 1
        conn = None
    lat.append((time.perf_counter() - t0) * 1000)
    time.sleep(max(0, 0.020 - (time.perf_counter() - t0)))
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else 0
print("%.2f %.2f %.2f %d %d" % (q(0.5), q(0.99), lat[-1] if lat else 0, len(lat), bad))
EOF

# wait_round R: until the agent's ready file says round R; sets at_ms (the
# wall time in it) or fails after $online_limit s.
wait_round() {
  local t0 line
  t0=$(now_ms)
  while :; do
    line=$(cat "$ready" 2>/dev/null || true)
    if [[ $line == *"(round $1,"* ]]; then
      at_ms=${line##* at }
      at_ms=${at_ms%)}
      return 0
    fi
    if ! kill -0 "$apid" 2>/dev/null || (($(now_ms) - t0 > online_limit * 1000)); then
      echo "  round $1 not reached; agent's last line:" >&2
      grep 'agents [0-9]*:' "$alog" | tail -1 >&2 || true
      return 1
    fi
    sleep 0.02
  done
}

start_backend() {
  (cd "$work/backend" && exec "$backend" --http-addr 127.0.0.1 --http-port "$http_port" \
    --ws-addr 127.0.0.1 --ws-port "$ws_port" --admin-endpoint "tcp://127.0.0.1:$admin_port" \
    --events-endpoint off --database-url "$work/backend/viworks.db" --log-level info --log-format text \
    --ratelimit-hello-rate 100000 --ratelimit-hello-burst 100000 \
    --ratelimit-address-rate 100000 --ratelimit-address-burst 100000 \
    --ratelimit-token-rate 100000 --ratelimit-token-burst 100000 \
    ${pending:+--ws-max-pending-hellos "$pending"} 2>>"$work/backend.log") &
  server=$!
  pids+=("$server")
  until (exec 3<>"/dev/tcp/127.0.0.1/$ws_port") 2>/dev/null; do sleep 0.005; done
  listening_ms=$(now_ms)
}

declare -A fig
echo "storm bench: N=$N runs=$runs first ramp ${ramp}/s, ulimit -n $nofile${pending:+, ws.max_pending_hellos $pending}"
echo "commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown); $(nproc) CPUs, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
for run in $(seq "$runs"); do
  echo "run $run"
  # --- ours --------------------------------------------------------------
  http_port=$(port); ws_port=$(port); admin_port=$(port)
  mkdir -p "$work/backend"
  : >"$work/backend.log"
  start_backend
  bench_wait_health "$http_port" || echo "  the backend did not answer /health in 5 s" >&2
  if ! admin register "$N" storm- "$work/tokens"; then
    echo "  registration failed (ports http $http_port ws $ws_port admin $admin_port); backend log:" >&2
    tail -20 "$work/backend.log" >&2
    exit 1
  fi
  ready="$work/ready"; alog="$work/agent.log"; rm -f "$ready"
  "$agent" --url "ws://127.0.0.1:$ws_port/ws/agent" --simulate "$N" --telemetry-ms 0 --ramp "$ramp" --ready-file "$ready" \
    --id-prefix storm- --token-file "$work/tokens" --log-format text 2>"$alog" &
  apid=$!
  pids+=("$apid")
  wait_round 1
  sleep 2 # let the first heartbeats settle
  t_term=$(now_ms)
  stop "$server"; src=$rc
  shut_ms=$(($(now_ms) - t_term))
  start_backend
  s0=$(ticks "$server")
  api_token=$(admin token)
  "$py" "$work/probe.py" 127.0.0.1 "$http_port" /agents/storm-00001 "$api_token" "$ready" "$online_limit" >"$work/probe.out" &
  ppid_=$!
  ok=1
  wait_round 2 || ok=0
  back_ms=$((at_ms - listening_ms))
  cpu=$(calc "100 * ($(ticks "$server") - $s0) / $hz * 1000 / ($(now_ms) - $listening_ms)" 0)
  wait "$ppid_" || true
  read -r p50 p99 pmax pcount pbad <"$work/probe.out"
  refused=$(admin detail edge | grep -o '[0-9]* refused (1013' | grep -o '^[0-9]*' || echo "?")
  fig[ours,back]+="$back_ms "
  fig[ours,shut]+="$shut_ms "
  fig[ours,p99]+="$p99 "
  fig[ours,p50]+="$p50 "
  fig[ours,cpu]+="$cpu "
  printf '  %-15s shutdown %5d ms (exit %d) | all %d online again %6d ms after the restart%s | server CPU %3d %% | REST GET /agents/{id}: p50 %6.2f ms, p99 %7.2f ms, max %7.2f ms over %d requests, %d not 200 | hellos refused with 1013: %s\n' \
    viworks-backend "$shut_ms" "$src" "$N" "$back_ms" "$([ "$ok" = 1 ] || echo ' [INCOMPLETE]')" "$cpu" "$p50" "$p99" "$pmax" "$pcount" "$pbad" "$refused"
  stop "$apid"
  stop "$server"
  rm -rf "$work/backend" "$work/tokens" "$ready"

  # --- baseline ------------------------------------------------------------
  ts_port=$(port)
  mkdir -p "$work/ts"
  start_ts() {
    (cd "$work/ts" && exec "$testserver" --port="$ts_port" -i lo >>"$work/ts.log" 2>&1) &
    server=$!
    pids+=("$server")
    until (exec 3<>"/dev/tcp/127.0.0.1/$ts_port") 2>/dev/null; do sleep 0.005; done
    listening_ms=$(now_ms)
  }
  start_ts
  "$agent" --url "ws://127.0.0.1:$ts_port/" --simulate "$N" --telemetry-ms 0 --ramp "$ramp" --ready-file "$ready" \
    --raw --log-format text 2>"$alog" &
  apid=$!
  pids+=("$apid")
  wait_round 1
  sleep 2
  stop "$server"
  start_ts
  ok=1
  wait_round 2 || ok=0
  back_ms=$((at_ms - listening_ms))
  fig[ts,back]+="$back_ms "
  printf '  %-15s all %d online again %6d ms after the restart%s\n' test-server "$N" "$back_ms" "$([ "$ok" = 1 ] || echo ' [INCOMPLETE]')"
  kill -TERM "$apid" "$server" 2>/dev/null || true
  stop "$apid"
  stop "$server"
  rm -rf "$work/ts" "$work/ts.log" "$ready"
done

# shellcheck disable=SC2086 # values on purpose
m() { printf '%s\n' ${fig[$1,$2]} | median; }
echo
echo "medians over $runs run(s), N=$N"
printf '%-44s %16s %16s %8s %s\n' figure viworks-backend test-server ratio target
b=$(m ours back); t=$(m ts back)
printf '%-44s %16s %16s %8s %s\n' "all online again after a restart (ms)" "$b" "$t" \
  "$(awk -v a="$b" -v b="$t" 'BEGIN {if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b}')" "< 10000 (moonshot < 3000)"
printf '%-44s %16s\n' "SIGTERM to exit with N connected (ms)" "$(m ours shut)"
printf '%-44s %16s\n' "REST GET /agents/{id} during the storm p50 (ms)" "$(m ours p50)"
printf '%-44s %16s\n' "REST GET /agents/{id} during the storm p99 (ms)" "$(m ours p99)"
printf '%-44s %16s\n' "server CPU during the storm (% of a core)" "$(m ours cpu)"
