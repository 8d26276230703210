#!/usr/bin/env bash
# Commands benchmark for docs/benchmarks.md (issue 4): N simulated agents
# (viworks-agent --simulate, every one answers a ping at once) and commands
# submitted over HTTP by bench/commands_load.c (commands-load), in two modes:
#  1. saturation: `count` ping commands, round-robin over the agents, sent as
#     fast as the server accepts them (48 keep-alive connections, one request
#     in flight on each). End-to-end commands/s = accepted / (first POST sent
#     -> every command's result durable). "Durable": completion is seen on the
#     event stream (command.state, SPEC §7), then GET /statistics must count
#     all of them finished in the database, then one more write (POST /agents)
#     is answered, which the store does only after the commit of a loop pass
#     at or after the one the count read came from. Target >= 5,000/s.
#  2. fixed rate: 1,000 commands/s for 15 s; submit->result latency per
#     command = arrival of its completion event - the POST's send time,
#     p50/p95/p99/max. Target p99 < 20 ms.
# Per run: a fresh backend on a fresh database (release build, free loopback
# ports, --log-level warn), N agents created with POST /agents, the fleet
# started and online (--ready-file), then saturation, then fixed rate. Prints
# one block per run and the medians. Figures only: nothing is asserted, but
# a run reports any command that failed, went missing or was refused.
# CPU figures are % of one core over the phase: backend, agent process, load
# generator, and "rest" (everything else on the machine, kernel softirq time
# for loopback TCP included; high when something else shares the cores).
#
# Concurrency limits stay at their defaults: commands.max_inflight 1024 (all
# agents) and commands.max_per_agent 4, so with 1,000 agents the global
# limit is the one that binds during saturation.
# Raised for the bench: the API rate limits (per address and per token: the
# load comes from one address with one token; defaults 500/s and 100/s would
# turn it into 429s) and the hello rate limit (the fleet connects at once).
#
# Usage: bench/commands.sh [agents=1000] [count=50000] [runs=3]
# Environment (optional): VW_BENCH_RATE (commands/s of the fixed-rate phase,
# default 1000), VW_BENCH_RATE_S (its length in s, default 15),
# VW_BENCH_CONNS (HTTP connections during saturation, default 48).
# Builds build-release/ with -DVW_BENCH=ON (incremental). Loopback only.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
agents=${1:-1000}
count=${2:-50000}
runs=${3:-3}
rate=${VW_BENCH_RATE:-1000}
rate_s=${VW_BENCH_RATE_S:-15}
conns=${VW_BENCH_CONNS:-48}
for v in "$agents" "$count" "$runs" "$rate" "$rate_s" "$conns"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/commands.sh [agents=1000] [count=50000] [runs=3]" >&2; exit 2; }
done
((agents <= 99999)) || { echo "at most 99999 agents (5-digit ids)" >&2; exit 2; }

ulimit -n 65536 2>/dev/null || ulimit -Sn "$(ulimit -Hn)"
. "$top/bench/lib.sh"
bench_commands_setup
bench_workdir commands
val() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $out"; } # a key of the last commands-load line

# Runs commands-load MODE ARGS..., sets out (its key=value line) and the CPU
# of the backend, the agent and the rest of the machine over the phase.
phase() {
  local s0 a0 m0 t0 ms ds da
  s0=$(ticks "$server"); a0=$(ticks "$apid"); m0=$(busy); t0=$(now_ms)
  out=$("$load" "$@" --http-port "$http_port" --events "tcp://127.0.0.1:$events_port" \
    --agents "$agents" --prefix bench-) || { echo "  commands-load $1: failed or incomplete (exit $?)" >&2; }
  ms=$(($(now_ms) - t0))
  ds=$(($(ticks "$server") - s0)); da=$(($(ticks "$apid") - a0))
  cpu_srv=$(calc "100 * $ds / $hz * 1000 / $ms" 0)
  cpu_agent=$(calc "100 * $da / $hz * 1000 / $ms" 0)
  local cm dl
  cm=$(val cpu_ms)
  dl=$((${cm:-0} * hz / 1000)) # the load generator's own CPU (its getrusage)
  cpu_load=$(calc "100 * $dl / $hz * 1000 / $ms" 0)
  cpu_rest=$(calc "100 * ($(busy) - $m0 - $ds - $da - $dl) / $hz * 1000 / $ms" 0)
  ((cpu_rest >= 0)) || cpu_rest=0 # tick rounding
}

declare -A fig # fig[metric] = space-separated values over the runs
keep() { fig[$1]+="$2 "; }

echo "commands bench: agents=$agents count=$count runs=$runs; fixed rate ${rate}/s for ${rate_s} s; $conns HTTP connections while saturating"
echo "commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$top" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)'); $(nproc) CPUs, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "limits: commands.max_inflight 1024, commands.max_per_agent 4 (defaults); API and hello rate limits raised"
t_start=$(now_ms)
for run in $(seq "$runs"); do
  echo "run $run"
  http_port=$(port); ws_port=$(port); events_port=$(port)
  mkdir -p "$work/backend"
  (cd "$work/backend" && exec "$backend" --http-addr 127.0.0.1 --http-port "$http_port" \
    --ws-addr 127.0.0.1 --ws-port "$ws_port" --admin-endpoint off \
    --events-endpoint "tcp://127.0.0.1:$events_port" --database-url "$work/backend/viworks.db" \
    --log-level warn --ratelimit-address-rate 1000000 --ratelimit-address-burst 10000000 \
    --ratelimit-token-rate 1000000 --ratelimit-token-burst 10000000 \
    --ratelimit-hello-rate 100000 --ratelimit-hello-burst 100000 2>"$work/backend.log") &
  server=$!
  pids+=("$server")
  bench_wait_health "$http_port" || echo "  the backend did not answer /health in 5 s" >&2
  "$load" register --http-port "$http_port" --agents "$agents" --prefix bench- --out "$work/tokens" >/dev/null
  rm -f "$work/ready"
  "$agent" --url "ws://127.0.0.1:$ws_port/ws/agent" --simulate "$agents" --telemetry-ms 0 --ramp 5000 \
    --id-prefix bench- --token-file "$work/tokens" --ready-file "$work/ready" \
    --log-format text --log-level warn 2>"$work/agent.log" &
  apid=$!
  pids+=("$apid")
  t0=$(now_ms)
  until [ -s "$work/ready" ]; do
    if ! kill -0 "$apid" 2>/dev/null || (($(now_ms) - t0 > 120000)); then
      echo "  the agents did not all come online" >&2
      exit 1
    fi
    sleep 0.05
  done
  echo "  $(<"$work/ready")"

  phase saturate --count "$count" --conns "$conns"
  if [ -n "$out" ]; then
    printf '  saturation: %d accepted in %d ms (%d/s); last result event at %d ms, durable at %d ms: %d commands/s end to end\n' \
      "$(val accepted)" "$(val accept_ms)" "$(val accepted_per_s)" "$(val events_ms)" "$(val durable_ms)" "$(val e2e_per_s)"
    printf '              submit->202 p50 %s p99 %s ms; submit->result p50 %s p99 %s ms; CPU backend %s %%, agent %s %%, load %s %%, rest %s %%\n' \
      "$(val submit_p50_ms)" "$(val submit_p99_ms)" "$(val lat_p50_ms)" "$(val lat_p99_ms)" "$cpu_srv" "$cpu_agent" "$cpu_load" "$cpu_rest"
    printf '              refused %s, HTTP 429/503 resent %s, failed %s, missing %s, no result event %s, retried %s\n' \
      "$(val rejected)" "$(val http_resent)" "$(val failed)" "$(val missing)" "$(val events_missing)" "$(val retried)"
    keep e2e "$(val e2e_per_s)"; keep acc "$(val accepted_per_s)"; keep scpu "$cpu_srv"
  fi

  phase rate --rate "$rate" --seconds "$rate_s"
  if [ -n "$out" ]; then
    printf '  rate %s/s for %s s (sent at %s/s, at most %s ms behind schedule): submit->result p50 %s p95 %s p99 %s max %s ms\n' \
      "$rate" "$rate_s" "$(val sent_per_s)" "$(val late_max_ms)" "$(val lat_p50_ms)" "$(val lat_p95_ms)" "$(val lat_p99_ms)" "$(val lat_max_ms)"
    printf '              submit->202 p50 %s p99 %s ms; CPU backend %s %%, agent %s %%, load %s %%, rest %s %%\n' \
      "$(val submit_p50_ms)" "$(val submit_p99_ms)" "$cpu_srv" "$cpu_agent" "$cpu_load" "$cpu_rest"
    printf '              refused %s, HTTP 429/503 resent %s, failed %s, missing %s, no result event %s, retried %s\n' \
      "$(val rejected)" "$(val http_resent)" "$(val failed)" "$(val missing)" "$(val events_missing)" "$(val retried)"
    keep p50 "$(val lat_p50_ms)"; keep p95 "$(val lat_p95_ms)"; keep p99 "$(val lat_p99_ms)"
    keep max "$(val lat_max_ms)"; keep rcpu "$cpu_srv"
  fi

  stop "$apid"; arc=$rc
  stop "$server"; brc=$rc
  [ "$arc" = 0 ] && [ "$brc" = 0 ] || echo "  exit status: agent $arc, backend $brc" >&2
  if grep -q '"level":"error"' "$work/backend.log"; then
    echo "  backend errors:" >&2
    grep '"level":"error"' "$work/backend.log" | head -3 >&2
  fi
  rm -rf "$work/backend" "$work/backend.log" "$work/tokens" "$work/agent.log"
done

# shellcheck disable=SC2086 # values on purpose
m() { printf '%s\n' ${fig[$1]:-} | median; }
echo
echo "medians over $runs run(s), agents=$agents (all runs: see above), total $((($(now_ms) - t_start) / 1000)) s"
printf '%-44s %10s  %s\n' figure median target
printf '%-44s %10s  %s\n' "end-to-end commands/s (saturation)" "$(m e2e)" ">= 5000/s"
printf '%-44s %10s\n' "accepted commands/s (saturation)" "$(m acc)"
printf '%-44s %10s\n' "backend CPU while saturated (% of a core)" "$(m scpu)"
printf '%-44s %10s\n' "submit->result p50 at ${rate}/s (ms)" "$(m p50)"
printf '%-44s %10s\n' "submit->result p95 at ${rate}/s (ms)" "$(m p95)"
printf '%-44s %10s  %s\n' "submit->result p99 at ${rate}/s (ms)" "$(m p99)" "< 20 ms"
printf '%-44s %10s\n' "submit->result max at ${rate}/s (ms)" "$(m max)"
printf '%-44s %10s\n' "backend CPU at ${rate}/s (% of a core)" "$(m rcpu)"
