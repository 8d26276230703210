#!/usr/bin/env bash
# Recovery benchmark (issue: "the queue is rebuilt from the database within
# 2 s for 100,000 pending commands"): writes N pending commands straight into
# a fresh database with sqlite3, starts an optimised viworks-backend on it and
# reports the time from start to the scheduler's "recovered" log line (taken
# from the line's own timestamp, so polling adds nothing), the scheduler's
# own figure in that line, and the time to the first /health 200. Median of
# `runs`. Figures only.
# Usage: bench/recovery.sh [N=100000] [runs=3]
#   VW_BUILD_DIR=dir  build and use another build directory (default build-release)
#
# Every wait is bounded and checks that the backend is still alive, and the
# backend picks its own ports (--http-port 0; the bound port is read from its
# log): a port probed free and taken by another process before the backend
# binds it makes the backend exit at once, and an unbounded health loop then
# spins forever.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$top/bench/lib.sh"
N=${1:-100000}
runs=${2:-3}
build=${VW_BUILD_DIR:-$top/build-release}
bin="$build/viworks-backend"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=Release -DVW_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target viworks-backend >/dev/null
command -v sqlite3 >/dev/null || { echo "needs sqlite3 (apt-get install sqlite3)" >&2; exit 2; }
work=$(mktemp -d)
pid=
cleanup() { if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi; rm -rf "$work"; }
trap cleanup EXIT
die() {
  echo "recovery.sh: $*" >&2
  [ -f "$work/log" ] && tail -n 20 "$work/log" >&2
  exit 1
}

# Starts the backend on $work/data with its log in $work/log; sets pid and http.
start() {
  : >"$work/log"
  (cd "$work" && exec "$bin" --database-url "$work/data/viworks.db" --http-port 0 --ws-port 0 \
     --admin-endpoint off --events-endpoint off --log-level info --log-format json \
     2>"$work/log") & pid=$!
  http=
  local deadline=$(( $(now_ms) + 30000 ))
  until [ -n "$http" ]; do
    kill -0 "$pid" 2>/dev/null || die "the backend exited during start-up"
    [ "$(now_ms)" -lt "$deadline" ] || die "no 'HTTP API on' line within 30 s"
    http=$(grep -o '"msg":"HTTP API on [^ ]*:[0-9]*' "$work/log" | sed -n '1s/.*://p' || true)
    [ -n "$http" ] || sleep 0.01
  done
}

# Waits (bounded) until a line matching $1 is in the log; prints it.
await_line() {
  local deadline=$(( $(now_ms) + ${2:-120000} ))
  until grep -m1 "$1" "$work/log"; do
    kill -0 "$pid" 2>/dev/null || die "the backend exited before logging '$1'"
    [ "$(now_ms)" -lt "$deadline" ] || die "no '$1' in the log in time"
    sleep 0.05
  done
}

# SIGTERM, then at most 10 s (the backend's own watchdog ends a shutdown
# after 4 s); a backend that is still there is a bug: say so, kill it, fail.
stop() {
  kill -TERM "$pid"
  local deadline=$(( $(now_ms) + 10000 ))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$(now_ms)" -ge "$deadline" ]; then
      kill -KILL "$pid"; wait "$pid" 2>/dev/null || true; pid=
      die "the backend did not stop within 10 s of SIGTERM"
    fi
    sleep 0.02
  done
  local rc=0
  wait "$pid" || rc=$?
  pid=
  [ "$rc" -eq 0 ] || die "the backend stopped with exit code $rc"
}

# A database with the schema and the admin user: let the backend create both
# once (the first start hashes the admin password, Argon2id, which must not
# run beside a measured recovery).
start
await_line "created user 'admin'" 30000 >/dev/null
stop
now=$(now_ms)
sqlite3 "$work/data/viworks.db" <<SQL
INSERT INTO agents (agent_id, token_hash, created_at) VALUES ('bench-agent', zeroblob(32), $now);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $N)
INSERT INTO commands (command_id, agent_id, type, payload, priority, state, max_retries,
                      timeout_ms, created_at, expires_at, seq)
SELECT printf('cmd-%08d', i), 'bench-agent', 'ping', '{}', i % 3, 'pending', 3, 30000,
       $now, $now + 86400000, i FROM n;
SQL
echo "database with $N pending commands: $(du -h "$work/data/viworks.db" | cut -f1)"

recovered=(); own=(); healthy=()
for _ in $(seq "$runs"); do
  t0=$(now_ms)
  start
  deadline=$(( t0 + 30000 ))
  until curl -sf --max-time 1 "http://127.0.0.1:$http/health" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || die "the backend exited before /health answered 200"
    [ "$(now_ms)" -lt "$deadline" ] || die "/health did not answer 200 within 30 s"
    sleep 0.01
  done
  healthy+=($(( $(now_ms) - t0 )))
  line=$(await_line "recovered from the database")
  ts=$(sed 's/.*"ts":"\([^"]*\)".*/\1/' <<<"$line")
  recovered+=($(( $(date -d "$ts" +%s%3N) - t0 )))
  own+=($(sed 's/.* in \([0-9]*\) ms.*/\1/' <<<"$line"))
  grep -o '"msg":"[0-9]* unfinished[^"]*"' <<<"$line"
  grep -q "\"msg\":\"$N unfinished" <<<"$line" || die "expected $N commands recovered"
  stop
done
echo "start -> /health 200:                        $(printf '%s\n' "${healthy[@]}" | median) ms (all: ${healthy[*]})"
echo "start -> $N commands re-queued:           $(printf '%s\n' "${recovered[@]}" | median) ms (all: ${recovered[*]})"
echo "scheduler's own figure (first page asked -> done): $(printf '%s\n' "${own[@]}" | median) ms (all: ${own[*]})"
