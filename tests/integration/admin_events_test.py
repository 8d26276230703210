#!/usr/bin/python3
"""The admin socket and the event stream (SPEC §7), driven by independent
clients: pyzmq (REQ, DEALER, SUB), websocket-client for agents and urllib
for the REST API, against the real binary on free loopback ports.

Run: /usr/bin/python3 admin_events_test.py PATH/TO/viworks-backend
Prints "N passed, M failed" and exits non-zero on any failure."""
import json, os, shutil, signal, socket, subprocess, sys, tempfile, time, traceback
import urllib.request, urllib.error
import zmq
import websocket

BACKEND = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("VW_BACKEND", ""))
PASSED, FAILED = 0, 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Backend:
    def __init__(self, extra=(), host="127.0.0.1"):
        self.host = host  # of the admin socket and the event stream
        self.dir = tempfile.mkdtemp(prefix="vw-py-")
        self.http, self.ws, self.admin, self.events = (free_port() for _ in range(4))
        args = [BACKEND, "--http-addr", "127.0.0.1", "--http-port", str(self.http),
                "--ws-addr", "127.0.0.1", "--ws-port", str(self.ws),
                "--admin-endpoint", f"tcp://{host}:{self.admin}",
                "--events-endpoint", f"tcp://{host}:{self.events}", *extra]
        env = dict(os.environ, VIWORKS_ADMIN_PASSWORD="admin-password-for-tests")
        self.proc = subprocess.Popen(args, cwd=self.dir, env=env, stderr=subprocess.PIPE, text=True)
        self.lines = []
        for line in self.proc.stderr:            # the "ready" log line is the event we wait for
            self.lines.append(line)
            if "ready in" in line:
                break
        else:
            raise RuntimeError("backend exited before ready:\n" + "".join(self.lines))
        self.ctx = zmq.Context()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rest = self.proc.communicate(timeout=10)[1]
        self.ctx.destroy(linger=0)
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode, rest

    def req(self, op, args=None, kind=zmq.REQ, raw=None):
        sock = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, 5000)
        sock.connect(f"tcp://{self.host}:{self.admin}")
        if raw is not None:
            payload = raw
        else:
            payload = json.dumps({"op": op, "args": args} if args is not None else {"op": op}).encode()
        sock.send(payload)
        reply = json.loads(sock.recv())
        sock.close()
        return reply

    def rest(self, method, path, token=None, body=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.http}{path}", method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, data=data, timeout=5) as res:
                return res.status, json.loads(res.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")


def agent(b, agent_id, token):
    ws = websocket.create_connection(f"ws://127.0.0.1:{b.ws}/ws/agent",
                                     subprotocols=["viworks.v1.json"], timeout=5)
    ws.send(json.dumps({"type": "hello", "agent_id": agent_id, "token": token}))
    return ws, json.loads(ws.recv())


def close_code(ws):
    """Reads until the server closes; returns the close code."""
    try:
        while True:
            op, data = ws.recv_data(control_frame=True)
            if op == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(data[:2], "big") if len(data) >= 2 else None
    except websocket.WebSocketConnectionClosedException:
        return None


def events_until(sub, topic, pred=lambda e: True, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        if sub.poll(int((end - time.time()) * 1000) + 1):
            t, body = sub.recv_multipart()
            event = json.loads(body)
            if t.decode() == topic and pred(event):
                return event
    raise AssertionError(f"no {topic} event in {timeout} s")


def run(fn, *args):
    global PASSED, FAILED
    try:
        fn(*args)
        PASSED += 1
        print(f"ok - {fn.__name__}")
    except Exception:
        FAILED += 1
        print(f"not ok - {fn.__name__}")
        traceback.print_exc()


B = None


def admin_ping_req_and_dealer():
    r = B.req("ping")
    assert r["ok"] is True and r["data"]["pong"] is True, r
    r = B.req("ping", kind=zmq.DEALER)
    assert r["ok"] is True, r


def admin_refuses_bad_requests_without_dying():
    for raw, code in [(b"not json", "bad_request"), (b"[1,2]", "bad_request"), (b'{"args":{}}', "bad_request"),
                      (b'{"op":5}', "bad_request"), (b'{"op":"ping","args":[]}', "bad_request"),
                      (b'{"op":"launch.missiles"}', "unknown_op"), (b"\xff\xfe", "bad_request")]:
        r = B.req(None, raw=raw)
        assert r["ok"] is False and r["error"]["code"] == code, (raw, r)
        assert r["error"]["message"], r
    r = B.req("agents.get", {"agent_id": "no spaces allowed"})
    assert r["ok"] is False and "agent_id" in r["error"]["message"], r
    r = B.req("agents.create", {"agent_id": "x", "colour": "red"})
    assert r["ok"] is False and "colour" in r["error"]["message"], r
    # Strict types: the admin socket's args are JSON, so integers are JSON integers (SPEC §6).
    for op, args, field in [("agents.list", {"limit": "10"}, "limit"), ("commands.list", {"limit": "10"}, "limit"),
                            ("commands.submit", {"agent_id": "x", "type": "ping", "timeout_ms": "30000"}, "timeout_ms")]:
        r = B.req(op, args)
        assert r["ok"] is False and r["error"]["code"] == "bad_request" and f"'{field}'" in r["error"]["message"], (op, r)
    assert B.req("agents.list", {"limit": 10})["ok"] is True
    assert B.req("ping")["ok"] is True


def admin_actors_status_round_trips():
    r = B.req("actors.status")
    assert r["ok"] and r["data"]["all_up"] is True, r
    assert set(r["data"]["actors"]) == {"store", "registry", "scheduler", "executor", "telemetry",
                                         "auth", "admin", "api", "edge"}, r
    assert all(a["status"] == "up" and a["latency_us"] >= 0 for a in r["data"]["actors"].values())


def issued(sub="admin", role=None, ttl_s=600):
    """tokens.issue for a user; the first start's admin is made just after
    "ready", so wait until the auth actor knows them."""
    args = {"sub": sub, "ttl_s": ttl_s, **({"role": role} if role else {})}
    end = time.time() + 5
    while True:
        r = B.req("tokens.issue", args)
        if r["ok"] or r["error"]["code"] not in ("not_found", "unavailable") or time.time() > end:
            assert r["ok"], r
            return r["data"]["access_token"]
        time.sleep(0.02)


def admin_tokens_issue_works_on_the_rest_api():
    token = issued("admin", "viewer")
    status, body = B.rest("GET", "/agents", token)
    assert status == 200, (status, body)
    status, _ = B.rest("POST", "/agents", token, {"agent_id": "nope"})
    assert status == 403
    for bad in [{"sub": "x", "role": "god"}, {"sub": "", "role": "admin"}, {"sub": "a/b"},
                {"sub": "x", "role": "admin", "ttl_s": 5}]:
        r = B.req("tokens.issue", bad)
        assert r["ok"] is False and r["error"]["code"] == "bad_request", (bad, r)
    # The subject must be a live user, the role at most theirs (docs/decisions.md).
    r = B.req("tokens.issue", {"sub": "nobody-here", "role": "viewer"})
    assert r["ok"] is False and r["error"]["code"] == "not_found", r
    assert B.req("users.create", {"username": "py-viewer", "password": "py-password-2", "role": "viewer"})["ok"]
    r = B.req("tokens.issue", {"sub": "py-viewer", "role": "admin"})
    assert r["ok"] is False and r["error"]["code"] == "forbidden", r
    r = B.req("tokens.issue", {"sub": "py-viewer"})
    assert r["ok"] and r["data"]["role"] == "viewer", r
    assert B.rest("GET", "/agents", r["data"]["access_token"])[0] == 200


def admin_users_ops_end_tokens():
    assert B.req("users.create", {"username": "py-ops", "password": "py-password-3", "role": "operator"})["ok"]
    token = issued("py-ops")
    assert B.rest("GET", "/agents", token)[0] == 200
    listed = B.req("users.list", {"limit": 1000})
    assert listed["ok"], listed
    names = [u["username"] for u in listed["data"]["users"]]
    assert "py-ops" in names and names == sorted(names), names
    assert "hash" not in json.dumps(listed) and "argon2" not in json.dumps(listed)
    got = B.req("users.get", {"username": "py-ops"})
    assert got["ok"] and got["data"]["role"] == "operator" and got["data"]["disabled"] is False, got
    assert B.req("users.get", {"username": "nobody-here"})["error"]["code"] == "not_found"
    assert B.req("users.get", {"username": "a/b"})["error"]["code"] == "bad_request"
    assert B.req("users.update", {"username": "py-ops"})["error"]["code"] == "bad_request"
    assert B.req("users.update", {"username": "py-ops", "disabled": 1})["error"]["code"] == "bad_request"
    assert B.rest("GET", "/agents", token)[0] == 200, "refused changes change nothing"
    r = B.req("users.update", {"username": "py-ops", "role": "viewer"})
    assert r["ok"] and r["data"]["role"] == "viewer", r
    assert B.rest("GET", "/agents", token)[0] == 401, "a role change ends the tokens at once"
    token = issued("py-ops")
    assert B.req("users.delete", {"username": "py-ops"}) == {"ok": True, "data": None}
    assert B.rest("GET", "/agents", token)[0] == 401, "a deletion ends the tokens at once"
    assert B.req("users.delete", {"username": "py-ops"})["error"]["code"] == "not_found"
    assert B.req("tokens.issue", {"sub": "py-ops"})["error"]["code"] == "not_found"


def admin_agents_and_users_ops_with_events():
    sub = B.ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"agent.")
    sub.connect(f"tcp://127.0.0.1:{B.events}")
    r = B.req("agents.create", {"agent_id": "py-01", "labels": {"site": "lis"}})
    assert r["ok"], r
    token = r["data"]["token"]
    assert r["data"]["agent_id"] == "py-01" and len(token) == 43
    assert B.req("agents.create", {"agent_id": "py-01"})["error"]["code"] == "conflict"
    # SUB subscriptions propagate asynchronously: reconnect until an event
    # arrives (bounded), then every later event is seen.
    for _ in range(20):
        ws, welcome = agent(B, "py-01", token)
        assert welcome["type"] == "welcome", welcome
        try:
            online = events_until(sub, "agent.online", lambda e: e["agent_id"] == "py-01", timeout=0.5)
            break
        except AssertionError:
            ws.close()
    else:
        raise AssertionError("never saw agent.online")
    assert online["session_id"] == welcome["session_id"] and isinstance(online["ts"], int), online
    ws.send(json.dumps({"type": "heartbeat", "status": "degraded"}))
    st = events_until(sub, "agent.status", lambda e: e["agent_id"] == "py-01")
    assert st["status"] == "degraded" and st["previous"] == "online", st
    got = B.req("agents.get", {"agent_id": "py-01"})
    assert got["ok"] and got["data"]["status"] == "degraded", got
    listed = B.req("agents.list", {"label": "site:lis"})
    assert [a["agent_id"] for a in listed["data"]["agents"]] == ["py-01"], listed
    r = B.req("agents.disconnect", {"agent_id": "py-01"})
    assert r["ok"], r
    assert close_code(ws) == 4000
    off = events_until(sub, "agent.offline", lambda e: e["agent_id"] == "py-01")
    assert off["reason"] == "disconnected_by_operator", off
    assert B.req("agents.disconnect", {"agent_id": "py-01"})["error"]["code"] == "not_found"
    ws, welcome = agent(B, "py-01", token)
    assert welcome["type"] == "welcome"
    assert B.req("agents.revoke", {"agent_id": "py-01"})["ok"]
    assert close_code(ws) == 4401
    ws, answer = agent(B, "py-01", token)
    assert answer["type"] == "error" and answer["code"] == "unauthorized", answer
    r = B.req("users.create", {"username": "pyuser", "password": "py-password-1", "role": "operator"})
    assert r["ok"] and r["data"]["role"] == "operator", r
    status, body = B.rest("POST", "/auth/token", body={"username": "pyuser", "password": "py-password-1"})
    assert status == 200, body
    sub.close()


def admin_log_level_changes_at_run_time():
    r = B.req("log.level", {"level": "debug"})
    assert r["ok"] and r["data"]["level"] == "debug", r
    assert B.req("log.level")["data"]["level"] == "debug"
    assert B.req("log.level", {"level": "loud"})["ok"] is False
    assert B.req("log.level", {"level": "info"})["ok"]


def admin_changes_are_audited_as_admin_socket():
    token = issued("admin", "admin")
    status, body = B.rest("GET", "/audit?actor=admin-socket&limit=1000", token)
    assert status == 200, body
    actions = {(e["action"], e["outcome"]) for e in body["entries"]}
    for a in [("agent.create", "success"), ("agent.create", "failure"), ("agent.disconnect", "success"),
              ("agent.revoke", "success"), ("user.create", "success"), ("token.issue", "success"),
              ("user.update", "success"), ("user.delete", "success")]:
        assert a in actions, (a, actions)
    assert all(e["source"].startswith("127.0.0.1") for e in body["entries"]), body["entries"][:3]


def admin_stale_agents_leave_memory_but_not_the_database():
    b = Backend(["--stale-after", "1s"])
    try:
        token = b.req("agents.create", {"agent_id": "py-stale"})["data"]["token"]
        def in_memory():
            detail = b.req("actors.status")["data"]["actors"]["registry"]["detail"]
            return int(detail.split(" agents in memory")[0])
        ws, welcome = agent(b, "py-stale", token)
        assert welcome["type"] == "welcome", welcome
        assert in_memory() == 1
        ws.close()
        end = time.time() + 5
        while in_memory() != 0 and time.time() < end:
            time.sleep(0.05)
        assert in_memory() == 0, "dropped from memory after stale_after"
        got = b.req("agents.get", {"agent_id": "py-stale"})
        assert got["ok"] and got["data"]["status"] == "offline", got
        ws, welcome = agent(b, "py-stale", token)          # and it can come back
        assert welcome["type"] == "welcome", welcome
        ws.close()
    finally:
        code, rest = b.stop()
        assert code == 0, rest[-2000:]


def admin_commands_ops_and_events():
    sub = B.ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"command.")
    sub.connect(f"tcp://127.0.0.1:{B.events}")
    token = B.req("agents.create", {"agent_id": "py-cmd"})["data"]["token"]
    r = B.req("commands.submit", {"agent_id": "py-cmd", "type": "bogus"})
    assert r["ok"] is False and r["error"]["code"] == "unknown_command_type", r
    # Subscriptions propagate asynchronously: submit until an event shows.
    for _ in range(20):
        r = B.req("commands.submit", {"agent_id": "py-cmd", "type": "ping", "priority": "high"})
        assert r["ok"] and r["data"]["state"] == "pending", r
        try:
            ev = events_until(sub, "command.state", lambda e: e["command_id"] == r["data"]["command_id"], 0.5)
            break
        except AssertionError:
            B.req("commands.cancel", {"command_id": r["data"]["command_id"]})
    else:
        raise AssertionError("never saw command.state")
    cid = r["data"]["command_id"]
    assert ev["state"] == "pending" and ev["agent_id"] == "py-cmd", ev
    ws, welcome = agent(B, "py-cmd", token)
    frame = json.loads(ws.recv())
    assert frame["type"] == "command" and frame["command_id"] == cid and frame["command_type"] == "ping", frame
    assert events_until(sub, "command.state", lambda e: e["command_id"] == cid and e["state"] == "executing")
    ws.send(json.dumps({"type": "command_ack", "command_id": cid}))
    ws.send(json.dumps({"type": "command_result", "command_id": cid, "status": "completed", "result": {"pong": True}}))
    done = events_until(sub, "command.state", lambda e: e["command_id"] == cid and e["state"] == "completed")
    assert done["attempts"] == 1, done
    # The event goes out when the scheduler hands the end to the store; the
    # row shows it once that pass has committed (bounded wait).
    for _ in range(200):
        got = B.req("commands.get", {"command_id": cid})
        if got["ok"] and got["data"]["state"] == "completed":
            break
        time.sleep(0.01)
    assert got["ok"] and got["data"]["result"] == {"pong": True} and got["data"]["delivered_at"], got
    listed = B.req("commands.list", {"agent_id": "py-cmd", "state": "completed"})
    assert [c["command_id"] for c in listed["data"]["commands"]] == [cid], listed
    assert B.req("commands.cancel", {"command_id": cid})["error"]["code"] == "conflict"
    ws.close()
    sub.close()


def admin_telemetry_query_and_summary():
    r = B.req("agents.create", {"agent_id": "py-tm"})
    assert r["ok"], r
    ws, welcome = agent(B, "py-tm", r["data"]["token"])
    assert welcome["type"] == "welcome", welcome
    now = int(time.time() * 1000)
    ws.send(json.dumps({"type": "telemetry", "seq": 1, "points": [
        {"ts": now - 2000, "metrics": {"cpu": 0.25}}, {"ts": now - 1000, "metrics": {"cpu": 0.75}}]}))
    assert json.loads(ws.recv()) == {"type": "telemetry_ack", "seq": 1}
    r = B.req("telemetry.query", {"agent_id": "py-tm", "metric": "cpu", "from": now - 60000})
    assert r["ok"] and r["data"]["series"] == [{"metric": "cpu", "points": [[now - 2000, 0.25], [now - 1000, 0.75]]}], r
    r = B.req("telemetry.query", {"agent_id": "py-tm", "from": now - 60000, "step_ms": 60000, "agg": "max"})
    assert r["ok"] and r["data"]["series"][0]["points"][-1][1] == 0.75, r
    r = B.req("telemetry.query", {"agent_id": "py-tm", "from": "yesterday"})
    assert not r["ok"] and r["error"]["code"] == "bad_request" and "'from'" in r["error"]["message"], r
    r = B.req("telemetry.query", {"agent_id": "py-nobody"})
    assert not r["ok"] and r["error"]["code"] == "not_found", r
    r = B.req("telemetry.summary", {"agent_id": "py-tm"})
    assert r["ok"] and r["data"]["metrics"]["cpu"]["last"] == 0.75, r
    assert r["data"]["metrics"]["cpu"]["windows"]["1m"]["count"] == 2, r
    r = B.req("telemetry.summary", {"agent_id": "py-tm", "extra": 1})
    assert not r["ok"] and r["error"]["code"] == "bad_request", r
    ws.close()


def stats_reports_broker_counters():
    r = B.req("stats")
    assert r["ok"], r
    actors = r["data"]["broker"]["actors"]
    assert actors["store"]["in"] > 0 and actors["edge"]["out"] > 0, actors


if __name__ == "__main__":
    tests = [f for f in list(globals().values()) if callable(f) and getattr(f, "__name__", "").startswith(("admin_", "stats_"))]
    PASSED = FAILED = 0
    B = Backend()
    try:
        for t in tests:
            run(t)
    finally:
        code, rest = B.stop()
        if code != 0:
            FAILED += 1
            print(f"not ok - backend exit code {code}\n{rest[-3000:]}")
    print(f"{PASSED} passed, {FAILED} failed")
    sys.exit(1 if FAILED else 0)
