#!/usr/bin/env bash
# Recovery benchmark (issue: "the queue is rebuilt from the database within
# 2 s for 100,000 pending commands"): writes N pending commands straight into
# a fresh database with sqlite3, starts an optimised viworks-backend on it and
# reports the time from start to the scheduler's "recovered" log line, and to
# the first /health 200. Median of `runs`. Figures only.
# Usage: bench/recovery.sh [N=100000] [runs=3]
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${1:-100000}
runs=${2:-3}
bin="$top/build-release/viworks-backend"
cmake -S "$top" -B "$top/build-release" -DCMAKE_BUILD_TYPE=Release -DVW_TESTS=OFF >/dev/null
cmake --build "$top/build-release" -j"$(nproc)" --target viworks-backend >/dev/null
command -v sqlite3 >/dev/null || { echo "needs sqlite3 (apt-get install sqlite3)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# A database with the schema: let the backend create it once.
http=$(port); ws=$(port)
(cd "$work" && exec "$bin" --http-port "$http" --ws-port "$ws" --admin-endpoint off \
   --events-endpoint off --log-level warn 2>/dev/null) & pid=$!
until curl -sf "http://127.0.0.1:$http/health" >/dev/null 2>&1; do sleep 0.05; done
kill -TERM "$pid"; wait "$pid" || true
now=$(date +%s%3N)
sqlite3 "$work/data/viworks.db" <<SQL
INSERT INTO agents (agent_id, token_hash, created_at) VALUES ('bench-agent', zeroblob(32), $now);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $N)
INSERT INTO commands (command_id, agent_id, type, payload, priority, state, max_retries,
                      timeout_ms, created_at, expires_at, seq)
SELECT printf('cmd-%08d', i), 'bench-agent', 'ping', '{}', i % 3, 'pending', 3, 30000,
       $now, $now + 86400000, i FROM n;
SQL
echo "database with $N pending commands: $(du -h "$work/data/viworks.db" | cut -f1)"

recovered=(); healthy=()
for _ in $(seq "$runs"); do
  http=$(port); ws=$(port)
  t0=$(date +%s%3N)
  (cd "$work" && exec "$bin" --http-port "$http" --ws-port "$ws" --admin-endpoint off \
     --events-endpoint off 2>"$work/log") & pid=$!
  until curl -sf "http://127.0.0.1:$http/health" >/dev/null 2>&1; do sleep 0.005; done
  healthy+=($(( $(date +%s%3N) - t0 )))
  until grep -q "recovered from the database" "$work/log"; do sleep 0.005; done
  recovered+=($(( $(date +%s%3N) - t0 )))
  grep -o '"msg":"[0-9]* unfinished[^"]*"' "$work/log" | head -1
  kill -TERM "$pid"; wait "$pid" || true
done
echo "start -> /health 200:              $(printf '%s\n' "${healthy[@]}" | median) ms (all: ${healthy[*]})"
echo "start -> $N commands re-queued: $(printf '%s\n' "${recovered[@]}" | median) ms (all: ${recovered[*]})"
