#!/usr/bin/env bash
# Agents benchmark for docs/benchmarks.md: N simulated agents (viworks-agent
# --simulate, ramped, spread over 127.0.0.1-250 as source addresses) against
#  - viworks-backend (hello with a registered token, welcome, heartbeats), and
#  - Debian's libwebsockets-test-server, the baseline: same lws version, a
#    WebSocket with no subprotocol, no hello, {"type":"heartbeat"} frames
#    (viworks-agent --raw),
# and for each: connect rate (N / time until all N online), server RSS growth
# per held agent, server CPU while idle-holding (heartbeats every 9 s, what
# the backend's default 10 s interval gives, spread evenly over the interval
# the way a real fleet's arrive: each simulated agent takes a random phase),
# with the agent process's own
# RSS and CPU for information. Prints one line per run and server, then the
# medians and the ratios ours / baseline. Figures only: nothing is asserted.
# "rest" is the machine's other CPU time in the same window (all other
# processes, plus kernel softirq time not charged to ours): a high value means
# something else shared the 2 cores and the run is disturbed.
#
# Usage: bench/agents.sh [N=10000] [runs=3]
# Environment (optional): VW_BENCH_RAMP (agents started per second, default
# 5000), VW_BENCH_HOLD_S (hold after the first heartbeat round, default 30),
# VW_BENCH_CPU_S (CPU window inside the hold, default 20).
# Builds build-release/ (incremental); installs python3-zmq and
# libwebsockets-test-server with apt-get if missing. Loopback only.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${1:-10000}
runs=${2:-3}
ramp=${VW_BENCH_RAMP:-5000}
hold_s=${VW_BENCH_HOLD_S:-30}
cpu_s=${VW_BENCH_CPU_S:-20}
beat_s=9         # heartbeat period of the agents (10 s interval minus a tenth)
online_limit=120 # seconds allowed for all N to come online
py=/usr/bin/python3
testserver=/usr/bin/libwebsockets-test-server
for v in "$N" "$runs" "$ramp" "$hold_s" "$cpu_s"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/agents.sh [N=10000] [runs=3]" >&2; exit 2; }
done
((cpu_s <= hold_s)) || { echo "VW_BENCH_CPU_S must not exceed VW_BENCH_HOLD_S" >&2; exit 2; }

# --- prerequisites ----------------------------------------------------------
. "$top/bench/lib.sh"
bench_need py:zmq:python3-zmq "$testserver:libwebsockets-test-server"
bench_build
backend="$top/build-release/viworks-backend"
agent="$top/build-release/viworks-agent"
# Every process started below inherits this: N sockets each for the agent and
# the server.
bench_nofile "$N"
bench_workdir agents

hz=$(getconf CLK_TCK)
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# Admin socket client (bench/admin.py: ZeroMQ DEALER, requests pipelined).
admin() { "$py" "$top/bench/admin.py" "tcp://127.0.0.1:$admin_port" "$@"; }
# GET /statistics: "online degraded" as the backend counts them (a cheap
# check: paging through agents.list leaves ~5 MB in the backend's heap, so
# that runs only after the RSS figure is taken).
stats() {
  curl -sf "http://127.0.0.1:$http_port/statistics" -H "authorization: Bearer $api_token" |
    "$py" -c 'import json,sys; a=json.load(sys.stdin)["agents"]; print(a["online"], a["degraded"])' 2>/dev/null ||
    echo "? ?"
}

# Runs the agent fleet against ws://127.0.0.1:$1$2 (extra agent options after)
# with the server's pid in $server; sets the figures of this load:
# online_ms, rss0, rss1, cpu_srv, cpu_agent, rss_agent, ok, and the CPU of
# both processes while connecting (ccpu_srv, ccpu_agent).
load() {
  local ws=$1 path=$2
  shift 2
  local ready="$work/ready" alog="$work/agent.log"
  rm -f "$ready"
  rss0=$(rss_kb "$server")
  local t0 s0 m0 t_wall t
  t0=$(now_ms)
  s0=$(ticks "$server")
  m0=$(busy)
  "$agent" --url "ws://127.0.0.1:$ws$path" --simulate "$N" --telemetry-ms 0 --ramp "$ramp" --ready-file "$ready" \
    --log-format text "$@" 2>"$alog" &
  apid=$!
  pids+=("$apid")
  ok=1
  until [ -s "$ready" ]; do
    t=${EPOCHREALTIME//[!0-9]/}
    if ! kill -0 "$apid" 2>/dev/null || ((t / 1000 - t0 > online_limit * 1000)); then
      ok=0
      break
    fi
    sleep 0.05 # the time itself comes from the agent; this only decides when to go on
  done
  t_ready=$(now_ms)
  t_wall=$((t_ready - t0))
  local ds da dm
  ds=$(($(ticks "$server") - s0))
  da=$(ticks "$apid" 2>/dev/null || echo 0)
  dm=$(($(busy) - m0))
  ccpu_srv=$(calc "100 * $ds / $hz * 1000 / $t_wall" 0)
  ccpu_agent=$(calc "100 * $da / $hz * 1000 / $t_wall" 0)
  ccpu_rest=$(calc "100 * ($dm - $ds - $da) / $hz * 1000 / $t_wall" 0)
  if ((ok)); then
    online_ms=$(awk '{print $5}' "$ready")
  else
    online_ms=$t_wall
    echo "  not all $N online after ${t_wall} ms; agent's last line:" >&2
    grep 'agents [0-9]*:' "$alog" | tail -1 >&2 || true
  fi
}

# Holds the fleet: waits for the first heartbeat round (the last agent online
# sends its first heartbeat within 9 s), then holds $hold_s s, measuring CPU
# over $cpu_s s of it (centered) and RSS at the end. Counts from t_ready.
hold() {
  local pre=$(((hold_s - cpu_s) / 2))
  local wait_ms=$((beat_s * 1000 + 100 + pre * 1000 - ($(now_ms) - t_ready)))
  ((wait_ms > 0)) && sleep "$(calc "$wait_ms / 1000" 3)"
  local s0 a0 s1 a1 m0 m1
  s0=$(ticks "$server"); a0=$(ticks "$apid"); m0=$(busy)
  sleep "$cpu_s"
  s1=$(ticks "$server"); a1=$(ticks "$apid"); m1=$(busy)
  cpu_rest=$(calc "100 * $((m1 - m0 - (s1 - s0) - (a1 - a0))) / $hz / $cpu_s" 1)
  sleep "$((hold_s - cpu_s - pre))"
  rss1=$(rss_kb "$server")
  rss_agent=$(rss_kb "$apid")
  cpu_srv=$(calc "100 * $((s1 - s0)) / $hz / $cpu_s" 2)
  cpu_agent=$(calc "100 * $((a1 - a0)) / $hz / $cpu_s" 2)
}

declare -A fig # fig[server,metric] = space-separated values over the runs
record() {      # record SERVER: appends this run's figures
  local per rate
  per=$(calc "($rss1 - $rss0) / $N" 2)
  rate=$(calc "$N * 1000 / $online_ms" 0)
  fig[$1,rate]+="$rate "
  fig[$1,per]+="$per "
  fig[$1,cpu]+="$cpu_srv "
  fig[$1,rss0]+="$rss0 "
  fig[$1,rss1]+="$rss1 "
  fig[$1,arss]+="$rss_agent "
  fig[$1,acpu]+="$cpu_agent "
  fig[$1,ccpu]+="$ccpu_srv "
  fig[$1,cacpu]+="$ccpu_agent "
  printf '  %-15s connect %5d/s (%d online in %d ms; CPU meanwhile: server %d %%, agent %d %%, rest %d %%)  RSS %5.1f -> %5.1f MB = %5.2f KB/agent  CPU holding %5.2f %%  | agent RSS %5.1f MB, CPU holding %5.2f %%; rest %s %%%s\n' \
    "$1" "$rate" "$N" "$online_ms" "$ccpu_srv" "$ccpu_agent" "$ccpu_rest" "$(calc "$rss0 / 1024")" "$(calc "$rss1 / 1024")" \
    "$per" "$cpu_srv" "$(calc "$rss_agent / 1024")" "$cpu_agent" "$cpu_rest" "$([ "$ok" = 1 ] || echo '  [INCOMPLETE]')"
}

echo "agents bench: N=$N runs=$runs ramp=${ramp}/s heartbeat every ${beat_s} s, hold ${hold_s} s after the first heartbeat round (CPU over ${cpu_s} s), ulimit -n $nofile"
echo "commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown); CPU figures in % of one core"
echo "$(nproc) CPUs, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
t_start=$(now_ms)
for run in $(seq "$runs"); do
  echo "run $run"
  # --- ours --------------------------------------------------------------
  http_port=$(port); ws_port=$(port); admin_port=$(port)
  mkdir -p "$work/backend"
  (cd "$work/backend" && exec "$backend" --http-addr 127.0.0.1 --http-port "$http_port" \
    --ws-addr 127.0.0.1 --ws-port "$ws_port" --admin-endpoint "tcp://127.0.0.1:$admin_port" \
    --events-endpoint off --database-url "$work/backend/viworks.db" --log-level warn \
    --ratelimit-hello-rate 100000 --ratelimit-hello-burst 100000 2>"$work/backend.log") &
  server=$!
  pids+=("$server")
  bench_wait_health "$http_port" || echo "  the backend did not answer /health in 5 s" >&2
  api_token=$(admin token)
  t0=$(now_ms)
  admin register "$N" bench- "$work/tokens"
  t_reg=$(($(now_ms) - t0))
  load "$ws_port" /ws/agent --id-prefix bench- --token-file "$work/tokens"
  read -r seen seen_degraded <<<"$(stats)"
  hold
  read -r held held_degraded <<<"$(stats)"
  listed=$(admin online)
  record viworks-backend
  echo "  (registration of $N agents: $t_reg ms; backend: $seen online, $seen_degraded degraded when the agent says all are online; $held online, $held_degraded degraded at the end of the hold; agents.list status=online: $listed)"
  stop "$apid"; arc=$rc
  # The backend, idle once its agents are gone, is stopped during the
  # baseline's wait for its first heartbeat round (nothing is measured then).
  backend_pid=$server

  # --- baseline: libwebsockets-test-server ---------------------------------
  ts_port=$(port)
  mkdir -p "$work/ts"
  (cd "$work/ts" && exec "$testserver" --port="$ts_port" -i lo >"$work/ts.log" 2>&1) &
  server=$!
  pids+=("$server")
  until (exec 3<>"/dev/tcp/127.0.0.1/$ts_port") 2>/dev/null; do sleep 0.01; done
  load "$ts_port" / --raw
  stop "$backend_pid"; brc=$rc
  [ "$arc" = 0 ] && [ "$brc" = 0 ] || echo "  exit status: agent $arc, backend $brc" >&2
  if grep -q '"level":"error"' "$work/backend.log"; then
    echo "  backend errors:" >&2
    grep '"level":"error"' "$work/backend.log" | head -3 >&2
  fi
  rm -rf "$work/backend" "$work/backend.log" "$work/tokens"
  hold
  record test-server
  # Both at once (the agent first): its closes need no answer from a server
  # that is going away, and this saves the seconds of 10,000 close handshakes.
  kill -TERM "$apid" "$server" 2>/dev/null || true
  stop "$apid"; arc=$rc
  stop "$server"; brc=$rc
  # The test server has no SIGTERM handler: 143 (killed by the signal) is its normal end.
  [ "$arc" = 0 ] && { [ "$brc" = 0 ] || [ "$brc" = 143 ]; } || echo "  exit status: agent $arc, test server $brc" >&2
  rm -rf "$work/ts" "$work/ts.log"
done

# shellcheck disable=SC2086 # values on purpose
m() { printf '%s\n' ${fig[$1,$2]} | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b}'; }
echo
echo "medians over $runs run(s), N=$N (ramp ${ramp}/s; all runs: see above), total $((($(now_ms) - t_start) / 1000)) s"
printf '%-34s %16s %16s %10s %s\n' figure viworks-backend test-server ratio target
for k in rate per cpu; do
  a=$(m viworks-backend "$k"); b=$(m test-server "$k")
  case $k in
    rate) name="connect rate (agents/s)"; target=">= 5000/s (moonshot 10000)" ;;
    per) name="RSS growth per agent (KB)"; target="<= 4 KB (moonshot 3)" ;;
    cpu) name="CPU idle-holding (% of a core)"; target="< 5 % (moonshot 2)" ;;
  esac
  printf '%-34s %16s %16s %10s %s\n' "$name" "$a" "$b" "$(ratio "$a" "$b")" "$target"
done
printf '%-34s %16s %16s\n' "server RSS empty -> held (MB)" \
  "$(calc "$(m viworks-backend rss0) / 1024") -> $(calc "$(m viworks-backend rss1) / 1024")" \
  "$(calc "$(m test-server rss0) / 1024") -> $(calc "$(m test-server rss1) / 1024")"
printf '%-34s %16s %16s\n' "agent process RSS (MB)" "$(calc "$(m viworks-backend arss) / 1024")" "$(calc "$(m test-server arss) / 1024")"
printf '%-34s %16s %16s\n' "agent process CPU holding (%)" "$(m viworks-backend acpu)" "$(m test-server acpu)"
printf '%-34s %16s %16s\n' "CPU while connecting: server (%)" "$(m viworks-backend ccpu)" "$(m test-server ccpu)"
printf '%-34s %16s %16s\n' "CPU while connecting: agent (%)" "$(m viworks-backend cacpu)" "$(m test-server cacpu)"
echo "(hello rate limit raised to 100000/s, burst 100000: every agent comes from 127.0.0.x)"
