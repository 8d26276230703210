#!/usr/bin/python3
"""viworksctl against the real backend (issue 12, SPEC §7): subcommands with
tables and --json, the exit codes scripts rely on, commands watch, events;
and the admin socket and event stream with ZeroMQ CURVE on a non-loopback
test address (127.0.0.2, CURVE forced on), driven both by viworksctl and by
a script in another language (Debian's python3-zmq), with an unknown key
refused and the allow-list read again when a key is added.

Run: /usr/bin/python3 ctl_test.py PATH/TO/viworks-backend PATH/TO/viworksctl
Prints "N passed, M failed" and exits non-zero on any failure."""
import json, os, shutil, subprocess, sys, tempfile, threading, time

import zmq
import zmq.auth

import admin_events_test as common

CTL = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else os.environ.get("VW_CTL", ""))


def ctl(b, *args, keys=None, timeout=20):
    """Runs viworksctl against b: (exit code, stdout, stderr)."""
    argv = [CTL, "--endpoint", f"tcp://{b.host}:{b.admin}",
            "--events-endpoint", f"tcp://{b.host}:{b.events}", "--timeout", "5000"]
    if keys:
        argv += ["--server-key", keys[0], "--key", keys[1]]
    r = subprocess.run(argv + list(args), capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def local_subcommands_tables_json_and_exit_codes(b):
    code, out, err = ctl(b, "ping")
    assert code == 0 and "pong" in out, (code, out, err)
    code, out, err = ctl(b, "agents", "create", "gw-ctl-1", "--label", "site=ams")
    assert code == 0 and "token" in out, (code, out, err)
    token = out.strip().splitlines()[-1]
    assert len(token) >= 20, out
    # A table with a header and the agent's row; --json parses.
    code, out, err = ctl(b, "agents", "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:2] == ["AGENT_ID", "STATUS"], out
    assert any(l.split()[:2] == ["gw-ctl-1", "offline"] and "site=ams" in l for l in lines), out
    code, out, err = ctl(b, "--json", "agents", "list", "--label", "site:ams")
    page = json.loads(out)
    assert code == 0 and [a["agent_id"] for a in page["agents"]] == ["gw-ctl-1"], out
    code, out, err = ctl(b, "--json", "agents", "get", "gw-ctl-1")
    assert code == 0 and json.loads(out)["labels"] == {"site": "ams"}, out
    # Exit codes: not found 3, usage 2, conflict 4, refused 1.
    code, out, err = ctl(b, "agents", "get", "nobody")
    assert code == 3 and "not_found" in err, (code, err)
    code, out, err = ctl(b, "agents", "frobnicate", "x")
    assert code == 2 and "unknown command" in err, (code, err)
    code, out, err = ctl(b, "--limit", "zero", "agents", "list")
    assert code == 2, (code, err)
    code, out, err = ctl(b, "commands", "submit", "gw-ctl-1", "ping", "--payload", "{bad")
    assert code == 2 and "--payload" in err, (code, err)
    code, out, err = ctl(b, "commands", "submit", "gw-ctl-1", "no such type!")
    assert code == 1, (code, out, err)
    # A command for the offline agent waits; watch follows it to its end.
    code, out, err = ctl(b, "commands", "submit", "gw-ctl-1", "ping", "--priority", "high")
    assert code == 0 and out.split()[1] == "pending", (code, out, err)
    cid = out.split()[0]
    watch = subprocess.Popen([CTL, "--endpoint", f"tcp://{b.host}:{b.admin}", "--events-endpoint",
                              f"tcp://{b.host}:{b.events}", "commands", "watch", cid],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # It has printed the current state once subscribed and read.
    first = watch.stdout.readline()
    assert first.startswith("pending"), first
    code, out, err = ctl(b, "--json", "commands", "cancel", cid)
    assert code == 0 and json.loads(out)["state"] == "cancelled", (code, out, err)
    rest, werr = watch.communicate(timeout=10)
    assert watch.returncode == 6 and "cancelled" in rest, (watch.returncode, rest, werr)
    code, out, err = ctl(b, "commands", "cancel", cid)
    assert code == 4 and "conflict" in err, (code, err)
    code, out, err = ctl(b, "commands", "list", "--agent", "gw-ctl-1", "--state", "cancelled")
    assert code == 0 and cid in out, out
    # An online agent completes a command while watch shows it.
    ws, welcome = common.agent(b, "gw-ctl-1", token)
    assert welcome["type"] == "welcome", welcome
    code, out, err = ctl(b, "commands", "submit", "gw-ctl-1", "ping")
    cid = out.split()[0]
    watch = subprocess.Popen([CTL, "--endpoint", f"tcp://{b.host}:{b.admin}", "--events-endpoint",
                              f"tcp://{b.host}:{b.events}", "commands", "watch", cid],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watch.stdout.readline()
    cmd = json.loads(ws.recv())
    while cmd.get("type") != "command":
        cmd = json.loads(ws.recv())
    ws.send(json.dumps({"type": "command_ack", "command_id": cmd["command_id"]}))
    ws.send(json.dumps({"type": "command_progress", "command_id": cmd["command_id"],
                        "progress": 50, "message": "half way"}))
    # The progress is kept on the command (API object, admin op) ...
    deadline = time.time() + 10
    while True:
        code, out, err = ctl(b, "--json", "commands", "get", cid)
        got = json.loads(out)
        if got.get("progress") == 50 or time.time() > deadline:
            break
        time.sleep(0.05)
    assert got["progress"] == 50 and got["progress_message"] == "half way", got
    ws.send(json.dumps({"type": "command_result", "command_id": cmd["command_id"],
                        "status": "completed", "result": {"pong": True}}))
    rest, werr = watch.communicate(timeout=10)
    assert watch.returncode == 0 and "completed" in rest, (watch.returncode, rest, werr)
    # ... and watch drew it as a bar.
    assert "[###############...............]  50% half way" in rest, rest
    ws.close()
    # A new agent token: shown once, the old one works a minute more.
    code, out, err = ctl(b, "--json", "agents", "rotate-token", "gw-ctl-1", "--grace-s", "60")
    rotated = json.loads(out) if code == 0 else {}
    assert code == 0 and rotated["token"] != token and rotated["previous_valid_until"] > 0, (code, out, err)
    code, out, err = ctl(b, "agents", "rotate-token", "nobody")
    assert code == 3, (code, err)
    token = rotated["token"]
    # Users, tokens, telemetry, actors, log level.
    code, out, err = ctl(b, "users", "create", "ops1", "--password", "a-long-password-1", "--role", "operator")
    assert code == 0, (code, out, err)
    code, out, err = ctl(b, "users", "list")
    assert code == 0 and any(l.split()[:2] == ["ops1", "operator"] for l in out.splitlines()), out
    code, out, err = ctl(b, "tokens", "issue", "ops1", "--ttl-s", "120")
    assert code == 0 and out.count(".") == 2, out
    code, out, err = ctl(b, "--json", "telemetry", "query", "gw-ctl-1", "--metric", "cpu")
    assert code == 0 and json.loads(out)["agent_id"] == "gw-ctl-1", (code, out, err)
    code, out, err = ctl(b, "actors")
    assert code == 0 and "store" in out and "up" in out, out
    code, out, err = ctl(b, "--json", "log", "level")
    assert code == 0 and "level" in json.loads(out), out


def backup_under_load_restores_every_accepted_command(b):
    """db backup while an agent runs commands and a script submits more: the
    copy opens, passes integrity_check and holds every command accepted
    before the backup was asked for; a backend started on it (the restore in
    docs/operations.md) answers for them."""
    code, out, err = ctl(b, "agents", "create", "gw-bk")
    token = out.strip().splitlines()[-1]
    ws, welcome = common.agent(b, "gw-bk", token)
    assert welcome["type"] == "welcome", welcome
    stop = threading.Event()

    def run_agent():  # completes every command it gets
        ws.settimeout(0.2)
        while not stop.is_set():
            try:
                m = json.loads(ws.recv())
            except Exception:
                continue
            if m.get("type") == "command":
                ws.send(json.dumps({"type": "command_result", "command_id": m["command_id"],
                                    "status": "completed", "result": {"ok": True}}))

    accepted = []  # (command_id, accepted at: monotonic)
    def submit():
        ctx = zmq.Context()
        d = ctx.socket(zmq.DEALER)
        d.setsockopt(zmq.RCVTIMEO, 5000)
        d.connect(f"tcp://{b.host}:{b.admin}")
        while not stop.is_set():
            d.send(json.dumps({"op": "commands.submit", "args": {"agent_id": "gw-bk", "type": "ping"}}).encode())
            r = json.loads(d.recv())
            assert r["ok"], r
            accepted.append((r["data"]["command_id"], time.monotonic()))
        ctx.destroy(linger=0)

    threads = [threading.Thread(target=run_agent), threading.Thread(target=submit)]
    for t in threads:
        t.start()
    keys = tempfile.mkdtemp(prefix="vw-backup-")
    try:
        while len(accepted) < 200:  # under way
            time.sleep(0.01)
        asked = time.monotonic()
        before = [cid for cid, at in accepted if at < asked]
        path = os.path.join(keys, "copy.db")
        code, out, err = ctl(b, "--json", "db", "backup", path)
        assert code == 0 and json.loads(out)["bytes"] > 0, (code, out, err)
        while len(accepted) < len(before) + 100:  # and it went on meanwhile
            time.sleep(0.01)
        stop.set()
        for t in threads:
            t.join(10)
        ws.close()
        # Refused: an existing file (never overwritten).
        code, out, err = ctl(b, "db", "backup", path)
        assert code == 1 and "exists" in err, (code, err)
        import sqlite3
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        have = {row[0] for row in db.execute("SELECT command_id FROM commands")}
        missing = [cid for cid in before if cid not in have]
        assert not missing, f"{len(missing)} of {len(before)} accepted commands missing"
        db.close()
        # Restore: a backend on the copy answers for those commands.
        data = os.path.join(keys, "restored")
        os.mkdir(data)
        shutil.copy(path, os.path.join(data, "viworks.db"))
        r = common.Backend(["--database-url", "sqlite://" + os.path.join(data, "viworks.db")])
        try:
            code, out, err = ctl(r, "--json", "commands", "get", before[-1])
            assert code == 0 and json.loads(out)["command_id"] == before[-1], (code, out, err)
            code, out, err = ctl(r, "--json", "commands", "list", "--agent", "gw-bk", "--limit", "1000")
            assert code == 0 and len(json.loads(out)["commands"]) >= len(before), (code, err)
        finally:
            rc, rest = r.stop()
            assert rc == 0, rest[-2000:]
    finally:
        stop.set()
        shutil.rmtree(keys, ignore_errors=True)


def events_follow_the_fleet(b):
    """viworksctl events prints the events of its topics as they come."""
    p = subprocess.Popen([CTL, "--events-endpoint", f"tcp://{b.host}:{b.events}", "events",
                          "--topic", "agent.", "--count", "1", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The subscription takes a moment to reach the publisher: create agents
    # until one agent.online arrives (bounded).
    code, out, err = ctl(b, "agents", "create", "gw-ev-1")
    token = out.strip().splitlines()[-1]
    deadline = time.time() + 10
    while p.poll() is None and time.time() < deadline:
        ws, welcome = common.agent(b, "gw-ev-1", token)
        ws.close()
        try:
            p.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
    out, err = p.communicate(timeout=5)
    event = json.loads(out.splitlines()[0])
    assert p.returncode == 0 and event["topic"].startswith("agent."), (p.returncode, out, err)
    assert event["event"]["agent_id"] == "gw-ev-1", event


def curve_on_a_non_loopback_address():
    keys = tempfile.mkdtemp(prefix="vw-keys-")
    try:
        clients = os.path.join(keys, "clients")
        os.mkdir(clients)
        for name in ("server", "ops", "script", "intruder"):
            r = subprocess.run([CTL, "keygen", os.path.join(keys, name), "--name", name],
                               capture_output=True, text=True)
            assert r.returncode == 0 and "public key" in r.stdout, (r.returncode, r.stderr)
        assert oct(os.stat(os.path.join(keys, "ops_secret")).st_mode & 0o777) == "0o600"
        shutil.copy(os.path.join(keys, "ops"), clients)
        server = os.path.join(keys, "server")
        # Without CURVE a non-loopback address is refused at start (exit 2),
        # before anything binds.
        r = subprocess.run([common.BACKEND, "--http-port", "0", "--ws-port", "0",
                            "--admin-endpoint", "tcp://0.0.0.0:1", "--events-endpoint", "off"],
                           capture_output=True, text=True, timeout=20, cwd=keys)
        assert r.returncode == 2 and "CURVE" in r.stderr, (r.returncode, r.stderr[-500:])
        b = common.Backend(["--admin-curve-cert", server, "--admin-curve-clients", clients],
                           host="127.0.0.2")
        try:
            ops = (server, os.path.join(keys, "ops"))
            code, out, err = ctl(b, "agents", "create", "gw-curve", keys=ops)
            assert code == 0, (code, out, err)
            code, out, err = ctl(b, "agents", "list", keys=ops)
            assert code == 0 and "gw-curve" in out, (code, out, err)
            code, out, err = ctl(b, "commands", "submit", "gw-curve", "ping", keys=ops)
            assert code == 0 and "pending" in out, (code, out, err)
            # No keys, or a key not allowed: refused, said at once (exit 5).
            code, out, err = ctl(b, "ping")
            assert code == 5 and "refused" in err, (code, err)
            intruder = (server, os.path.join(keys, "intruder"))
            code, out, err = ctl(b, "ping", keys=intruder)
            assert code == 5 and "not in the backend's --admin-curve-clients" in err, (code, err)
            # python3-zmq, CURVE, the same keys tooling: ops and events.
            shutil.copy(os.path.join(keys, "script"), clients)  # read again: allowed now
            spub, ssec = zmq.auth.load_certificate(os.path.join(keys, "script_secret"))
            server_pub, _ = zmq.auth.load_certificate(server)
            ctx = zmq.Context()
            sub = ctx.socket(zmq.SUB)
            sub.curve_publickey, sub.curve_secretkey, sub.curve_serverkey = spub, ssec, server_pub
            sub.setsockopt(zmq.SUBSCRIBE, b"command.")
            sub.connect(f"tcp://127.0.0.2:{b.events}")
            dealer = ctx.socket(zmq.DEALER)
            dealer.curve_publickey, dealer.curve_secretkey, dealer.curve_serverkey = spub, ssec, server_pub
            dealer.setsockopt(zmq.RCVTIMEO, 5000)
            dealer.connect(f"tcp://127.0.0.2:{b.admin}")

            def call(op, args):
                dealer.send(json.dumps({"op": op, "args": args}).encode())
                return json.loads(dealer.recv())

            assert call("agents.get", {"agent_id": "gw-curve"})["data"]["agent_id"] == "gw-curve"
            # The subscription reaches the publisher a moment after connect:
            # submit until an event arrives (bounded), then follow that command.
            seen = None
            for _ in range(50):
                reply = call("commands.submit", {"agent_id": "gw-curve", "type": "ping"})
                assert reply["ok"], reply
                if sub.poll(100):
                    seen = json.loads(sub.recv_multipart()[1])
                    break
            assert seen and seen["agent_id"] == "gw-curve", seen
            cancelled = call("commands.cancel", {"command_id": seen["command_id"]})
            assert cancelled["ok"] and cancelled["data"]["state"] == "cancelled", cancelled
            event = common.events_until(sub, "command.state",
                                        lambda e: e["command_id"] == seen["command_id"] and e["state"] == "cancelled")
            assert event["state"] == "cancelled"
            ctx.destroy(linger=0)
        finally:
            code, rest = b.stop()
            assert code == 0, rest[-2000:]
    finally:
        shutil.rmtree(keys, ignore_errors=True)


if __name__ == "__main__":
    B = common.Backend()
    try:
        common.run(local_subcommands_tables_json_and_exit_codes, B)
        common.run(events_follow_the_fleet, B)
        common.run(backup_under_load_restores_every_accepted_command, B)
    finally:
        code, rest = B.stop()
        if code != 0:
            common.FAILED += 1
            print(f"not ok - backend exit code {code}\n{rest[-3000:]}")
    common.run(curve_on_a_non_loopback_address)
    print(f"{common.PASSED} passed, {common.FAILED} failed")
    sys.exit(1 if common.FAILED else 0)
