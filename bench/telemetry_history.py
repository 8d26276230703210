#!/usr/bin/env python3
"""Query latency for bench/telemetry.sh (issue 11). Connects as one
registered agent (websocket-client, JSON subprotocol), sends 7 days of
history (12 gateway-like metrics, a point every 10 s: 60,480 points, in
frames of 360 points = one hour), waits for every ack, then times N
requests of each query over one keep-alive HTTP connection and prints
their median and p99 in ms:
  raw:  one metric, the last hour, raw points (360)
  hour: one metric, 7 days in 1-hour buckets (168, from the 1-hour roll-up)
Usage: telemetry_history.py WS_PORT HTTP_PORT AGENT_ID TOKEN API_TOKEN [N]"""
import http.client, json, math, random, sys, time
import websocket

ws_port, http_port, agent_id, token, api_token = sys.argv[1:6]
n = int(sys.argv[6]) if len(sys.argv) > 6 else 50
now = int(time.time() * 1000)
start = now - 7 * 86400 * 1000 + 60000  # inside the raw retention
ws = websocket.create_connection(f"ws://127.0.0.1:{ws_port}/ws/agent", subprotocols=["viworks.v1.json"], timeout=30)
ws.send(json.dumps({"type": "hello", "agent_id": agent_id, "token": token}))
assert json.loads(ws.recv())["type"] == "welcome"
rnd = random.Random(1)
cpu, mem, tunnels, rx = 0.3, 812, 17, 1e9
seq, frame, sent = 1, [], 0
t = start
while t <= now:
    cpu = abs(cpu + rnd.uniform(-0.02, 0.02)); mem = abs(mem + rnd.randint(-4, 4)); tunnels = abs(tunnels + rnd.randint(-1, 1)); rx += rnd.randint(0, 250000)
    frame.append({"ts": t, "metrics": {"cpu": round(cpu, 4), "mem_used_mb": mem, "tunnels": tunnels, "rx_bytes": rx,
                                      "tx_bytes": rx // 3, "latency_ms": round(12 + 3 * math.sin(t / 3.6e6), 2), "sessions": 240 + tunnels,
                                      "loss_pct": round(abs(rnd.gauss(0.1, 0.05)), 3), "load1": round(cpu * 2.7, 2), "conntrack": 5300 + mem,
                                      "disk_used_pct": 41.2, "temp_c": round(48 + rnd.uniform(-0.5, 0.5), 1)}})
    t += 10000
    if len(frame) == 360 or t > now:
        ws.send(json.dumps({"type": "telemetry", "seq": seq, "points": frame}))
        sent += 1; seq += 1; frame = []
acked = 0
while acked < sent:
    msg = json.loads(ws.recv())
    if msg.get("type") == "telemetry_ack":
        acked += 1
    elif msg.get("type") == "error":
        sys.exit(f"history refused: {msg}")
ws.close()
conn = http.client.HTTPConnection("127.0.0.1", int(http_port), timeout=30)
headers = {"Authorization": f"Bearer {api_token}"}
queries = {
    "raw": f"/telemetry/{agent_id}?metric=cpu&from={now - 3600000}&to={now + 1}",
    "hour": f"/telemetry/{agent_id}?metric=cpu&from={now - 7 * 86400000}&to={now + 1}&step_ms=3600000&agg=avg",
}
for name, path in queries.items():
    times, points = [], 0
    for i in range(n + 3):
        t0 = time.perf_counter()
        conn.request("GET", path, headers=headers)
        res = conn.getresponse()
        body = res.read()
        dt = (time.perf_counter() - t0) * 1000
        assert res.status == 200, (res.status, body[:200])
        if i >= 3:  # warm-up
            times.append(dt)
        points = len(json.loads(body)["series"][0]["points"])
    times.sort()
    print(f"query={name} points={points} median_ms={times[len(times) // 2]:.2f} p99_ms={times[min(len(times) - 1, int(0.99 * len(times)))]:.2f}")
print(f"history frames={sent} points={(now - start) // 10000 + 1}")
