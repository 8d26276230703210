#!/usr/bin/env python3
"""Admin socket client for the bench/*.sh scripts (ZeroMQ DEALER, requests
pipelined). Usage: admin.py ENDPOINT OP [ARGS]
  register N PREFIX FILE   registers agents PREFIX00001.. and writes
                           "agent_id token" lines to FILE (mode 0600)
  token                    prints an admin access token for the HTTP API
  online                   prints how many agents the backend lists online
  detail ACTOR             prints the health detail of an actor (actors.status)
"""
import json, os, sys, zmq
endpoint, op = sys.argv[1], sys.argv[2]
ctx = zmq.Context()
sock = ctx.socket(zmq.DEALER)
sock.setsockopt(zmq.LINGER, 0)
sock.setsockopt(zmq.RCVTIMEO, 30000)
sock.connect(endpoint)

def send(op, args):
    sock.send_multipart([b"", json.dumps({"op": op, "args": args}).encode()])

def recv():
    reply = json.loads(sock.recv_multipart()[-1])
    if not reply.get("ok"):
        sys.exit("admin error: %s" % reply.get("error"))
    return reply["data"]

if op == "register":  # register N PREFIX FILE: token file "agent_id token"
    n, prefix, path = int(sys.argv[3]), sys.argv[4], sys.argv[5]
    lines, sent, window = [], 0, 1000
    while len(lines) < n:
        while sent < n and sent - len(lines) < window:
            sent += 1
            send("agents.create", {"agent_id": "%s%05d" % (prefix, sent)})
        data = recv()
        lines.append("%s %s\n" % (data["agent_id"], data["token"]))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.writelines(lines)
elif op == "token":  # token: an admin access token for the HTTP API
    # tokens.issue needs a live user; the first start makes admin just after
    # "ready", so ask again while it is not there yet.
    import time
    for _ in range(100):
        send("tokens.issue", {"sub": "admin", "role": "admin", "ttl_s": 3600})
        reply = json.loads(sock.recv_multipart()[-1])
        if reply.get("ok") or reply["error"]["code"] not in ("not_found", "unavailable"):
            break
        time.sleep(0.1)
    if not reply.get("ok"):
        sys.exit("admin error: %s" % reply.get("error"))
    print(reply["data"]["access_token"])
elif op == "online":  # online: how many agents the backend lists as online
    count, cursor = 0, None
    while True:
        args = {"status": "online", "limit": 1000}
        if cursor:
            args["cursor"] = cursor
        send("agents.list", args)
        data = recv()
        count += len(data["agents"])
        cursor = data.get("next_cursor")
        if not cursor:
            break
    print(count)
elif op == "detail":  # detail ACTOR: the actor's health detail (actors.status)
    send("actors.status", {})
    print(recv()["actors"].get(sys.argv[3], {}).get("detail", ""))
