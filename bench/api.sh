#!/usr/bin/env bash
# REST read benchmark for docs/benchmarks.md (issue 10): an authenticated
# `GET /agents/{id}` of a connected agent on viworks-backend (the registry
# answers it from memory) against Debian's nginx serving the very same JSON
# body (the bytes the backend returned for that agent) as a static file;
# and the same read of an agent that never connected (the registry asks the
# store: one more hop and a SELECT). Same load for both: `wrk -t1 -c50 -d<D>s --latency` with the
# same bearer-token header (nginx ignores it); both servers pinned to CPU 0,
# wrk to CPU 1; the two alternate within one invocation, `runs` times each.
# Per run: requests/s and latency p50/p99; then the medians and the ratio
# backend / nginx (issue 10's target >= 0.5, moonshot 0.8), for both reads. Figures only:
# nothing is asserted, but non-2xx answers and socket errors are reported.
#
# The backend runs with its defaults except: SQLite in a fresh temporary
# directory, loopback ports, --log-level warn, the per-address and per-token
# rate limits raised to 1,000,000/s (the load comes from one address with
# one token; the defaults, 500/s and 100/s, would answer 429).
# nginx: `worker_processes 1`, no access log, `sendfile on`, keep-alive.
#
# Usage: bench/api.sh [runs=3] [seconds=10]
# Builds build-release/ (incremental); installs wrk, nginx-light (or uses an
# installed nginx) and python3-zmq with apt-get if missing. Loopback only.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${1:-3}
secs=${2:-10}
py=/usr/bin/python3
for v in "$runs" "$secs"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/api.sh [runs=3] [seconds=10]" >&2; exit 2; }
done
(($(nproc) >= 2)) || { echo "bench/api.sh needs 2 CPUs (server on one, wrk on the other)" >&2; exit 1; }

. "$top/bench/lib.sh"
bench_need wrk:wrk nginx:nginx-light py:zmq:python3-zmq
nginx=$(command -v nginx || echo /usr/sbin/nginx)
bench_build
backend="$top/build-release/viworks-backend"
agent="$top/build-release/viworks-agent"
bench_workdir api
admin() { "$py" "$top/bench/admin.py" "tcp://127.0.0.1:$admin_port" "$@"; }

# --- the backend, one agent, a token, the body ------------------------------
http_port=$(port); ws_port=$(port); admin_port=$(port); nginx_port=$(port)
mkdir -p "$work/backend" "$work/www/agents" "$work/nginx"
(cd "$work/backend" && exec taskset -c 0 "$backend" --http-addr 127.0.0.1 --http-port "$http_port" \
  --ws-addr 127.0.0.1 --ws-port "$ws_port" --admin-endpoint "tcp://127.0.0.1:$admin_port" \
  --events-endpoint off --database-url "$work/backend/viworks.db" --log-level info --log-format text \
  --ratelimit-address-rate 1000000 --ratelimit-address-burst 1000000 \
  --ratelimit-token-rate 1000000 --ratelimit-token-burst 1000000 2>"$work/backend.log") &
server=$!
pids+=("$server")
bench_wait_health "$http_port" || echo "the backend did not answer /health in 5 s" >&2
if ! admin register 2 api- "$work/tokens"; then
  echo "registration failed (ports http $http_port ws $ws_port admin $admin_port); backend log:" >&2
  tail -20 "$work/backend.log" >&2
  exit 1
fi
token=$(admin token)
# api-00001 connects (one simulated agent, on wrk's CPU); api-00002 never does.
taskset -c 1 "$agent" --url "ws://127.0.0.1:$ws_port/ws/agent" --simulate 1 --telemetry-ms 0 --id-prefix api- \
  --token-file "$work/tokens" --ready-file "$work/ready" --log-level warn 2>"$work/agent.log" &
pids+=("$!")
for _ in $(seq 500); do [ -s "$work/ready" ] && break; sleep 0.01; done
[ -s "$work/ready" ] || { echo "the agent did not come online in 5 s:" >&2; tail -5 "$work/agent.log" >&2; exit 1; }
id=api-00001
path="/agents/$id"
cold="/agents/api-00002"
curl -sf "http://127.0.0.1:$http_port$path" -H "authorization: Bearer $token" -o "$work/www/agents/$id"
bytes=$(stat -c %s "$work/www/agents/$id")
# nginx's worker runs as an unprivileged user: it must read the document.
chmod a+rx "$work" "$work/www" "$work/www/agents"
chmod a+r "$work/www/agents/$id"

cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  open_file_cache max=64 inactive=60s;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$nginx_port;
    root $work/www;
    default_type application/json;
  }
}
EOF
taskset -c 0 "$nginx" -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" &
nginx_pid=$!
pids+=("$nginx_pid")
until (exec 3<>"/dev/tcp/127.0.0.1/$nginx_port") 2>/dev/null; do
  kill -0 "$nginx_pid" 2>/dev/null || { echo "nginx did not start:" >&2; cat "$work/nginx/error.log" >&2; exit 1; }
  sleep 0.01
done
nbytes=$(curl -sf "http://127.0.0.1:$nginx_port$path" | wc -c)
[ "$nbytes" = "$bytes" ] || { echo "nginx serves $nbytes bytes, the backend $bytes" >&2; cat "$work/nginx/error.log" >&2; exit 1; }

# wrk's figures: "rps p50_ms p99_ms non2xx errors".
to_ms() { # 812.00us | 1.23ms | 1.01s
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else print v }'
}
load() { # load URL: runs wrk on CPU 1
  local out rps p50 p99 non2xx errors
  out=$(taskset -c 1 wrk -t1 -c50 -d"${secs}s" --latency -H "Authorization: Bearer $token" "$1")
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  errors=$(awk '/Socket errors/ {print $0}' <<<"$out")
  echo "$rps $p50 $p99 ${non2xx:-0} ${errors:+[$errors]}"
}

declare -A fig
echo "api bench: runs=$runs, wrk -t1 -c50 -d${secs}s --latency; servers on CPU 0, wrk on CPU 1; body $bytes bytes"
echo "commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown); $(nproc) CPUs, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ); $("$nginx" -v 2>&1)"
for run in $(seq "$runs"); do
  echo "run $run"
  for who in viworks-backend nginx not-connected; do
    case $who in
      nginx) url="http://127.0.0.1:$nginx_port$path" ;;
      not-connected) url="http://127.0.0.1:$http_port$cold" ;;
      *) url="http://127.0.0.1:$http_port$path" ;;
    esac
    read -r rps p50 p99 non2xx errors <<<"$(load "$url")"
    printf '  %-16s %8s req/s  p50 %7s ms  p99 %7s ms  non-2xx %s %s\n' "$who" "$rps" "$p50" "$p99" "$non2xx" "$errors"
    fig[$who,rps]+="$rps "
    fig[$who,p50]+="$p50 "
    fig[$who,p99]+="$p99 "
  done
done
stop "$server"
stop "$nginx_pid"

# shellcheck disable=SC2086 # values on purpose
m() { printf '%s\n' ${fig[$1,$2]} | median; }
echo
echo "medians over $runs run(s)"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 == 0) print "n/a"; else printf "%.2f", a / b}'; }
printf '%-28s %16s %16s %8s %s\n' figure viworks-backend nginx ratio target
b=$(m viworks-backend rps); n=$(m nginx rps); c=$(m not-connected rps)
printf '%-28s %16s %16s %8s %s\n' "GET /agents/{id} req/s" "$b" "$n" "$(ratio "$b" "$n")" \
  ">= 0.5 (moonshot 0.8); a connected agent"
printf '%-28s %16s %16s %8s %s\n' "  never-connected agent" "$c" "$n" "$(ratio "$c" "$n")" \
  "(the registry asks the store)"
printf '%-28s %16s %16s\n' "latency p50 (ms)" "$(m viworks-backend p50)" "$(m nginx p50)"
printf '%-28s %16s %16s\n' "latency p99 (ms)" "$(m viworks-backend p99)" "$(m nginx p99)"
printf '%-28s %16s\n' "  never-connected p50/p99" "$(m not-connected p50) / $(m not-connected p99)"
