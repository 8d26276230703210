#!/usr/bin/python3
"""GET /metrics (issue 11, SPEC §6) read as Prometheus reads it: Debian's
python3-prometheus-client parses the exposition (text format 0.0.4), and
the families follow Prometheus' naming (viworks_ prefix, base units,
counters ending in _total, no per-agent labels). The figures follow what
happened: an agent's session and its telemetry show in the counters.
Also GET /statistics' telemetry figures, and http.metrics_auth.

Run: /usr/bin/python3 metrics_test.py PATH/TO/viworks-backend
Prints "N passed, M failed" and exits non-zero on any failure."""
import json, sys, time, urllib.error, urllib.request

from prometheus_client.parser import text_string_to_metric_families

import admin_events_test as common


def scrape(b, token=None):
    req = urllib.request.Request(f"http://127.0.0.1:{b.http}/metrics")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as res:
        assert res.headers["content-type"].startswith("text/plain; version=0.0.4"), res.headers
        return res.read().decode()


def families(text):
    """name -> (type, {sample name + labels: value}); the parser refuses malformed text."""
    out = {}
    for fam in text_string_to_metric_families(text):
        assert fam.documentation, f"{fam.name} has no HELP"
        assert fam.name not in out, f"{fam.name} twice"
        out[fam.name] = (fam.type, {(s.name, tuple(sorted(s.labels.items()))): s.value for s in fam.samples})
    return out


def check_naming(text, fams):
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name.startswith("viworks_"), name
            assert (kind == "counter") == name.endswith("_total"), f"{name} is a {kind}"
            if kind == "histogram":
                assert name.endswith("_seconds"), f"{name}: durations are in seconds"
    for name, (kind, samples) in fams.items():
        for (sample, labels), value in samples.items():
            for key, _ in labels:
                assert key not in ("agent", "agent_id", "session_id", "command_id"), f"{sample} has a per-agent label"
            assert value == value, f"{sample} is NaN"


def value(fams, family, sample=None, **labels):
    kind, samples = fams[family]
    return samples[(sample or family, tuple(sorted(labels.items())))]


def login(b):
    """The first start creates admin just after "ready": ask until it is there (bounded)."""
    for _ in range(100):
        status, body = b.rest("POST", "/auth/token", body={"username": "admin", "password": "admin-password-for-tests"})
        if status == 200:
            return body["access_token"]
        time.sleep(0.05)
    raise AssertionError(f"no login: {status} {body}")


def metrics_parse_and_follow_the_fleet(b):
    text = scrape(b)
    fams = families(text)
    check_naming(text, fams)
    for actor in ("registry", "scheduler", "executor", "store", "telemetry", "edge"):
        assert value(fams, "viworks_up", actor=actor) == 1, actor
    ((_, labels), build), = fams["viworks_build_info"][1].items()
    assert dict(labels)["version"] and build == 1, labels
    assert value(fams, "viworks_process_resident_memory_bytes") > 1e6
    assert value(fams, "viworks_process_open_fds") > 5
    before = value(fams, "viworks_telemetry_values_stored", "viworks_telemetry_values_stored_total")
    connects = value(fams, "viworks_agent_connects", "viworks_agent_connects_total")

    token = login(b)
    status, created = b.rest("POST", "/agents", token, {"agent_id": "py-metrics"})
    assert status == 201, created
    ws, welcome = common.agent(b, "py-metrics", created["token"])
    assert welcome["type"] == "welcome", welcome
    now = int(time.time() * 1000)
    for seq in range(1, 6):
        ws.send(json.dumps({"type": "telemetry", "seq": seq, "points": [
            {"ts": now - 1000 * seq, "metrics": {"cpu": 0.5, "mem_used_mb": 800, "tunnels": seq}}]}))
        ack = json.loads(ws.recv())
        assert ack == {"type": "telemetry_ack", "seq": seq}, ack
    ws.send(json.dumps({"type": "telemetry", "seq": 3, "points": [{"ts": now, "metrics": {"x": 1}}]}))
    assert json.loads(ws.recv()) == {"type": "telemetry_ack", "seq": 3}

    fams = families(scrape(b))
    assert value(fams, "viworks_telemetry_values_stored", "viworks_telemetry_values_stored_total") == before + 15
    assert value(fams, "viworks_telemetry_frames_duplicate", "viworks_telemetry_frames_duplicate_total") >= 1
    assert value(fams, "viworks_agent_connects", "viworks_agent_connects_total") == connects + 1
    assert value(fams, "viworks_agent_connections", edge="edge") >= 1
    assert value(fams, "viworks_agents", status="online") >= 1
    acks = value(fams, "viworks_telemetry_ack_seconds", "viworks_telemetry_ack_seconds_count")
    assert acks >= 6, acks
    assert value(fams, "viworks_telemetry_ack_seconds", "viworks_telemetry_ack_seconds_bucket", le="+Inf") == acks
    assert value(fams, "viworks_store_commit_seconds", "viworks_store_commit_seconds_count") > 0
    assert value(fams, "viworks_actor_messages_received", "viworks_actor_messages_received_total", actor="telemetry") > 0
    # Queue depths for every actor that answered; an idle backend has next
    # to nothing waiting anywhere.
    for actor in ("registry", "scheduler", "executor", "store", "telemetry", "edge"):
        depth = value(fams, "viworks_actor_queue_depth", actor=actor)
        assert 0 <= depth < 100, (actor, depth)
    assert value(fams, "viworks_store_checkpoints", "viworks_store_checkpoints_total", by="writer") == 0

    # /statistics: the telemetry actor's figures.
    status, stats = b.rest("GET", "/statistics", token)
    assert status == 200, stats
    t = stats["telemetry"]
    assert t["values_stored"] >= 15 and t["frames_stored"] >= 5 and t["duplicates"] >= 1, t
    assert t["values_per_s"] >= 0 and t["ack_p99_ms"] is not None, t
    ws.close()


def metrics_can_require_a_token():
    b = common.Backend(["--metrics-auth"])
    try:
        try:
            scrape(b)
            raise AssertionError("GET /metrics without a token was answered")
        except urllib.error.HTTPError as e:
            assert e.code == 401, e.code
        families(scrape(b, login(b)))
    finally:
        code, rest = b.stop()
        assert code == 0, rest


if __name__ == "__main__":
    B = common.Backend()
    try:
        common.run(metrics_parse_and_follow_the_fleet, B)
        common.run(metrics_can_require_a_token)
    finally:
        code, rest = B.stop()
        if code != 0:
            common.FAILED += 1
            print(f"not ok - backend exit code {code}\n{rest[-3000:]}")
    print(f"{common.PASSED} passed, {common.FAILED} failed")
    sys.exit(1 if common.FAILED else 0)
