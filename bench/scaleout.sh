#!/usr/bin/env bash
# Scale-out benchmark for docs/benchmarks.md (issue 13): the agents and
# commands benchmarks against three topologies, in the same invocation:
#  all-in-one  one process, every actor (the default deployment);
#  1 edge      a core process (every actor but the agent edge; the broker on
#              tcp://127.0.0.1) and one edge process joined over TCP;
#  2 edges     the same core and two edge processes; the fleet is spread
#              over both (viworks-agent with two --url: agent i on edge i mod 2).
# Per topology and run: a fresh database, N agents registered (commands-load
# register), the fleet started (ramped, source addresses 127.0.0.1-250) and
# timed until all are online (connect rate); idle holding for VW_BENCH_HOLD_S
# s with heartbeats every 9 s, spread (CPU and RSS of all backend processes
# together); then commands: saturation (count pings, round-robin, 48 HTTP
# connections, end-to-end commands/s) and a fixed rate (submit->result
# p50/p99), as bench/commands.sh measures them. Medians per topology, and the
# ratios "2 edges / 1 edge" and "1 edge / all-in-one". Figures only.
#
# On one 2-core machine every process shares the same two cores, so a
# second edge cannot add CPU: what it shows is the cost of the extra hop and
# process, and how the work splits. docs/benchmarks.md says what that
# predicts for edges on hosts of their own.
#
# Usage: bench/scaleout.sh [agents=2000] [count=20000] [runs=3]
# Environment: VW_BENCH_HOLD_S (idle hold, default 12), VW_BENCH_RATE (fixed
# rate, default 1000/s), VW_BENCH_RATE_S (default 10), VW_BENCH_RAMP (agents
# started per second, default 20000: above what the backend admits, so the
# connect rate is the server's).
# Every CPU figure is the sum over the backend processes, with the core's
# own share beside it: what the core host would carry were the edges on
# hosts of their own.
# Builds build-release/ with -DVW_BENCH=ON (incremental). Loopback only.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
agents=${1:-2000}
count=${2:-20000}
runs=${3:-3}
hold_s=${VW_BENCH_HOLD_S:-12}
rate=${VW_BENCH_RATE:-1000}
rate_s=${VW_BENCH_RATE_S:-10}
ramp=${VW_BENCH_RAMP:-20000}
for v in "$agents" "$count" "$runs" "$hold_s" "$rate" "$rate_s" "$ramp"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/scaleout.sh [agents=2000] [count=20000] [runs=3]" >&2; exit 2; }
done
((agents <= 99999)) || { echo "at most 99999 agents (5-digit ids)" >&2; exit 2; }

. "$top/bench/lib.sh"
bench_commands_setup
bench_nofile "$agents"
bench_workdir scaleout
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
val() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $out"; }
limits=(--log-level warn --ratelimit-address-rate 1000000 --ratelimit-address-burst 10000000
  --ratelimit-token-rate 1000000 --ratelimit-token-burst 10000000
  --ratelimit-hello-rate 100000 --ratelimit-hello-burst 100000)

# The backend processes of the topology being measured.
servers=()
sum_ticks() { local t=0 p; for p in "${servers[@]}"; do t=$((t + $(ticks "$p"))); done; echo "$t"; }
sum_rss() { local t=0 p; for p in "${servers[@]}"; do t=$((t + $(rss_kb "$p"))); done; echo "$t"; }

# start_topology EDGES: 0 = all-in-one; sets http_port, events_port, urls.
start_topology() {
  local edges=$1 bp i ws
  http_port=$(port); events_port=$(port)
  servers=(); urls=()
  mkdir -p "$work/core"
  if ((edges == 0)); then
    ws=$(port)
    (cd "$work/core" && exec "$backend" --http-addr 127.0.0.1 --http-port "$http_port" \
      --ws-addr 127.0.0.1 --ws-port "$ws" --admin-endpoint off \
      --events-endpoint "tcp://127.0.0.1:$events_port" --database-url "$work/core/viworks.db" \
      "${limits[@]}" 2>"$work/core.log") &
    servers+=($!); pids+=($!)
    urls+=(--url "ws://127.0.0.1:$ws/ws/agent")
  else
    bp=$(port)
    (cd "$work/core" && exec "$backend" --actors store,registry,scheduler,executor,telemetry,auth,admin,api \
      --http-addr 127.0.0.1 --http-port "$http_port" --admin-endpoint off \
      --events-endpoint "tcp://127.0.0.1:$events_port" --database-url "$work/core/viworks.db" \
      --broker-bind "tcp://127.0.0.1:$bp" "${limits[@]}" 2>"$work/core.log") &
    servers+=($!); pids+=($!)
    bench_wait_health "$http_port" >/dev/null || true
    for i in $(seq "$edges"); do
      ws=$(port)
      mkdir -p "$work/edge$i"
      (cd "$work/edge$i" && exec "$backend" --actors edge --node "e$i" --broker-connect "tcp://127.0.0.1:$bp" \
        --ws-addr 127.0.0.1 --ws-port "$ws" "${limits[@]}" 2>"$work/edge$i.log") &
      servers+=($!); pids+=($!)
      urls+=(--url "ws://127.0.0.1:$ws/ws/agent")
      until (exec 3<>"/dev/tcp/127.0.0.1/$ws") 2>/dev/null; do sleep 0.01; done
    done
  fi
  bench_wait_health "$http_port" || echo "  the backend did not answer /health in 5 s" >&2
}

stop_topology() {
  local p bad=0
  for p in "${servers[@]}"; do stop "$p"; ((rc == 0)) || bad=1; done
  ((bad == 0)) || echo "  a backend process did not exit 0" >&2
  if grep -qh '"level":"error"' "$work"/*.log 2>/dev/null; then
    echo "  backend errors:" >&2
    grep -h '"level":"error"' "$work"/*.log | head -3 >&2
  fi
  rm -rf "$work/core" "$work"/edge* "$work"/*.log "$work/tokens" "$work/ready"
}

# commands-load MODE ARGS...: sets out and cpu_srv (all backend processes).
phase() {
  local s0 c0 t0 ms
  s0=$(sum_ticks); c0=$(ticks "${servers[0]}"); t0=$(now_ms)
  out=$("$load" "$@" --http-port "$http_port" --events "tcp://127.0.0.1:$events_port" \
    --agents "$agents" --prefix bench-) || echo "  commands-load $1: failed or incomplete" >&2
  ms=$(($(now_ms) - t0))
  cpu_srv=$(calc "100 * ($(sum_ticks) - $s0) / $hz * 1000 / $ms" 0)
  cpu_core=$(calc "100 * ($(ticks "${servers[0]}") - $c0) / $hz * 1000 / $ms" 0)
}

declare -A fig
keep() { fig[$1,$2]+="$3 "; }
names=("all-in-one" "1 edge" "2 edges")

echo "scale-out bench: agents=$agents count=$count runs=$runs ramp ${ramp}/s hold ${hold_s} s; fixed rate ${rate}/s for ${rate_s} s"
echo "commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$top" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)'); $(nproc) CPUs, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
t_start=$(now_ms)
for run in $(seq "$runs"); do
  echo "run $run"
  for edges in 0 1 2; do
    name=${names[$edges]}
    start_topology "$edges"
    "$load" register --http-port "$http_port" --agents "$agents" --prefix bench- --out "$work/tokens" >/dev/null
    rss0=$(sum_rss)
    t0=$(now_ms)
    "$agent" "${urls[@]}" --simulate "$agents" --telemetry-ms 0 --ramp "$ramp" --id-prefix bench- \
      --token-file "$work/tokens" --ready-file "$work/ready" --log-format text --log-level warn 2>"$work/agent.log" &
    apid=$!
    pids+=("$apid")
    until [ -s "$work/ready" ]; do
      if ! kill -0 "$apid" 2>/dev/null || (($(now_ms) - t0 > 120000)); then
        echo "  the agents did not all come online" >&2
        exit 1
      fi
      sleep 0.05
    done
    online_ms=$(awk '{print $5}' "$work/ready")
    # Idle holding: past the first heartbeat round, then the window.
    sleep 9.2
    s0=$(sum_ticks); c0=$(ticks "${servers[0]}")
    sleep "$hold_s"
    hold_cpu=$(calc "100 * ($(sum_ticks) - $s0) / $hz / $hold_s" 2)
    hold_core=$(calc "100 * ($(ticks "${servers[0]}") - $c0) / $hz / $hold_s" 2)
    rss1=$(sum_rss)
    phase saturate --count "$count" --conns 48
    e2e=$(val e2e_per_s); scpu=$cpu_srv; score=$cpu_core
    phase rate --rate "$rate" --seconds "$rate_s"
    p50=$(val lat_p50_ms); p99=$(val lat_p99_ms); rcpu=$cpu_srv; rcore=$cpu_core
    rate_conn=$(calc "$agents * 1000 / $online_ms" 0)
    per=$(calc "($rss1 - $rss0) / $agents" 2)
    printf '  %-10s connect %5d/s  hold CPU %5.2f %% (core %5.2f)  RSS %6.1f -> %6.1f MB (%5.2f KB/agent)  commands %5s/s (CPU %3s %%, core %3s)  at %s/s p50 %s p99 %s ms (CPU %3s %%, core %3s)\n' \
      "$name" "$rate_conn" "$hold_cpu" "$hold_core" "$(calc "$rss0 / 1024")" "$(calc "$rss1 / 1024")" "$per" \
      "${e2e:-?}" "$scpu" "$score" "$rate" "${p50:-?}" "${p99:-?}" "$rcpu" "$rcore"
    keep "$edges" conn "$rate_conn"; keep "$edges" hold "$hold_cpu"; keep "$edges" per "$per"
    keep "$edges" e2e "${e2e:-0}"; keep "$edges" scpu "$scpu"; keep "$edges" p50 "${p50:-0}"
    keep "$edges" p99 "${p99:-0}"; keep "$edges" rcpu "$rcpu"
    keep "$edges" hcore "$hold_core"; keep "$edges" score "$score"; keep "$edges" rcore "$rcore"
    stop "$apid"
    stop_topology
  done
done

# shellcheck disable=SC2086 # values on purpose
m() { printf '%s\n' ${fig[$1,$2]:-} | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b}'; }
echo
echo "medians over $runs run(s), agents=$agents, total $((($(now_ms) - t_start) / 1000)) s"
printf '%-40s %12s %12s %12s %14s %14s\n' figure all-in-one "1 edge" "2 edges" "1 edge/all" "2 edges/1"
for k in conn hold hcore per e2e scpu score p50 p99 rcpu rcore; do
  case $k in
    conn) n="connect rate (agents/s)" ;;
    hold) n="CPU idle-holding, all processes (%)" ;;
    hcore) n="  of which the core (%)" ;;
    per) n="RSS growth per agent, all (KB)" ;;
    e2e) n="commands/s end to end (saturation)" ;;
    scpu) n="CPU while saturated, all (%)" ;;
    score) n="  of which the core (%)" ;;
    p50) n="submit->result p50 at ${rate}/s (ms)" ;;
    p99) n="submit->result p99 at ${rate}/s (ms)" ;;
    rcpu) n="CPU at ${rate}/s, all (%)" ;;
    rcore) n="  of which the core (%)" ;;
  esac
  a=$(m 0 "$k"); b=$(m 1 "$k"); c=$(m 2 "$k")
  printf '%-40s %12s %12s %12s %14s %14s\n' "$n" "$a" "$b" "$c" "$(ratio "$b" "$a")" "$(ratio "$c" "$b")"
done
