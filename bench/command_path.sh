#!/usr/bin/env bash
# The length of the command path (issue 10, deliverable 3): how many
# messages the actors send through the broker, and how many the store
# writes, per command. N ping commands to 10 simulated agents, submitted one
# at a time over one keep-alive HTTP connection, each waited for on the event
# stream (command.state "completed") before the next: every message travels
# alone, as it does at a low rate. The broker's per-actor counters (GET
# /statistics, "messages": in = sent by the actor, out = delivered to it)
# are read before and after; the difference, less what the two /statistics
# requests themselves cost (measured by two more back to back), divided by
# N. Writes: the store's commits and rows are not counted here (the
# store's writes per quick command, from the code: insert + audit row,
# executing, finish).
#
# Usage: bench/command_path.sh [N=500]
# Builds build-release/ (incremental); installs python3-zmq if missing.
# Loopback only. Figures only: nothing is asserted.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
n=${1:-500}
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/command_path.sh [N=500]" >&2; exit 2; }
py=/usr/bin/python3

. "$top/bench/lib.sh"
bench_need py:zmq:python3-zmq
bench_build
backend="$top/build-release/viworks-backend"
agent="$top/build-release/viworks-agent"
bench_workdir path
admin() { "$py" "$top/bench/admin.py" "tcp://127.0.0.1:$admin_port" "$@"; }

http_port=$(port); ws_port=$(port); admin_port=$(port); events_port=$(port)
mkdir -p "$work/backend"
(cd "$work/backend" && exec "$backend" --http-addr 127.0.0.1 --http-port "$http_port" \
  --ws-addr 127.0.0.1 --ws-port "$ws_port" --admin-endpoint "tcp://127.0.0.1:$admin_port" \
  --events-endpoint "tcp://127.0.0.1:$events_port" --database-url "$work/backend/viworks.db" \
  --log-level warn --ratelimit-address-rate 1000000 --ratelimit-address-burst 1000000 \
  --ratelimit-token-rate 1000000 --ratelimit-token-burst 1000000 2>"$work/backend.log") &
pids+=("$!")
bench_wait_health "$http_port" || echo "the backend did not answer /health in 5 s" >&2
admin register 10 path- "$work/tokens"
token=$(admin token)
"$agent" --url "ws://127.0.0.1:$ws_port/ws/agent" --simulate 10 --telemetry-ms 0 --id-prefix path- \
  --token-file "$work/tokens" --ready-file "$work/ready" --log-level warn 2>"$work/agent.log" &
pids+=("$!")
for _ in $(seq 500); do [ -s "$work/ready" ] && break; sleep 0.01; done
[ -s "$work/ready" ] || { echo "the agents did not come online in 5 s" >&2; exit 1; }

echo "command path: $n ping commands, one at a time, 10 agents; commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)"
"$py" - "$http_port" "tcp://127.0.0.1:$events_port" "$token" "$n" "$work/backend/viworks.db" \
  "tcp://127.0.0.1:$admin_port" <<'EOF'
import http.client, json, re, sqlite3, sys, time, zmq
port, events, token, n, db, admin_ep = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6]
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
auth = {"Authorization": "Bearer " + token}
def call(method, path, body=None):
    headers = dict(auth)
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = conn.getresponse()
    return r.status, json.loads(r.read() or b"null")
def counters():
    status, stats = call("GET", "/statistics")
    assert status == 200, stats
    return stats["messages"]
sub = zmq.Context().socket(zmq.SUB)
sub.setsockopt(zmq.SUBSCRIBE, b"command.state")
sub.setsockopt(zmq.RCVTIMEO, 10000)
sub.connect(events)
time.sleep(0.3)  # the subscription reaches the broker's PUB
def wait_done(cid):
    while True:
        parts = sub.recv_multipart()
        event = json.loads(parts[-1])
        if event.get("command_id") == cid and event.get("state") in ("completed", "failed", "timed_out", "cancelled"):
            return event["state"]
# What two /statistics requests cost by themselves.
a = counters(); b = counters()
before = counters()
states = {}
for i in range(n):
    status, body = call("POST", "/commands", {"agent_id": "path-%05d" % (i % 10 + 1), "type": "ping", "payload": {}})
    assert status == 202, body
    state = wait_done(body["command_id"])
    states[state] = states.get(state, 0) + 1
after = counters()
print("  outcomes:", states)
actors = sorted(set(before) | set(after))
tot_in = tot_out = 0.0
print("  %-10s %8s %8s   (per command: sent by the actor, delivered to it)" % ("actor", "sent", "received"))
for name in actors:
    def d(key):
        stats = (after.get(name, {}).get(key, 0) - before.get(name, {}).get(key, 0)) \
            - (b.get(name, {}).get(key, 0) - a.get(name, {}).get(key, 0))
        return stats / n
    i, o = d("in"), d("out")
    tot_in += i; tot_out += o
    if abs(i) > 0.005 or abs(o) > 0.005:
        print("  %-10s %8.2f %8.2f" % (name, i, o))
print("  %-10s %8.2f %8.2f" % ("total", tot_in, tot_out))
row = sqlite3.connect(db).execute(
    "SELECT count(*), sum(delivered_at IS NOT NULL), sum(attempts) FROM commands").fetchone()
print("  commands in the database: %d, with delivered_at: %d, attempts: %d" % row)
EOF
