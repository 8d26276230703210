#!/usr/bin/python3
"""The appliance (issue 12): `cmake --install` into a temporary prefix lays
out the programs, the systemd unit (its paths following the prefix), the
dedicated user (sysusers.d), the example config and the docs; the unit has
the hardening options and passes `systemd-analyze verify` (where systemd is
there) with an exposure score of at most 2.0; the installed backend starts
on the example config and stops with exit 0; and its --help names every
flag of the settings table in docs/operations.md (help as complete as the
manual).

Run: /usr/bin/python3 appliance_check.py SOURCE_DIR BUILD_DIR"""
import os, re, shutil, signal, socket, subprocess, sys, tempfile

TOP, BUILD = sys.argv[1], sys.argv[2]
FAILED = []


def check(cond, what):
    if not cond:
        FAILED.append(what)
        print("not ok -", what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


prefix = tempfile.mkdtemp(prefix="vw-install-")
try:
    r = subprocess.run(["cmake", "--install", BUILD, "--prefix", prefix], capture_output=True, text=True)
    check(r.returncode == 0, f"cmake --install failed: {r.stderr[-500:]}")
    for rel in ("bin/viworks-backend", "bin/viworks-agent", "bin/viworksctl",
                "lib/systemd/system/viworks.service", "lib/sysusers.d/viworks.conf",
                "share/doc/viworks/viworks.conf.example", "share/doc/viworks/operations.md"):
        check(os.path.exists(os.path.join(prefix, rel)), f"not installed: {rel}")
    unit_path = os.path.join(prefix, "lib/systemd/system/viworks.service")
    unit = open(unit_path).read() if os.path.exists(unit_path) else ""
    check(f"ExecStart={prefix}/bin/viworks-backend\n" in unit, "ExecStart does not follow the prefix")
    for option in ("User=viworks", "StateDirectory=viworks", "ProtectSystem=strict", "NoNewPrivileges=yes",
                   "ProtectHome=yes", "PrivateTmp=yes", "CapabilityBoundingSet=", "KillSignal=SIGTERM"):
        check(re.search("^" + re.escape(option) + "$", unit, re.M), f"the unit lacks {option}")
    sysusers = open(os.path.join(prefix, "lib/sysusers.d/viworks.conf")).read()
    check(re.search(r"^u viworks ", sysusers, re.M), "sysusers.d does not make the user viworks")
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify", unit_path], capture_output=True, text=True)
        check(r.returncode == 0 and not r.stderr.strip(), f"systemd-analyze verify: {r.stderr.strip()}")
        r = subprocess.run(["systemd-analyze", "security", "--offline=true", unit_path],
                           capture_output=True, text=True)
        m = re.search(r"Overall exposure level for viworks.service: ([0-9.]+)", r.stdout)
        check(m and float(m.group(1)) <= 2.0, f"exposure: {m.group(1) if m else r.stdout[-300:]}")
        print(f"systemd-analyze: verify ok, exposure {m.group(1) if m else '?'}")
    else:
        print("systemd-analyze is not installed here: the unit is checked by its text only")

    # The installed backend on the example config (ports overridden).
    work = os.path.join(prefix, "state")
    os.mkdir(work)
    backend = os.path.join(prefix, "bin/viworks-backend")
    args = [backend, "--config", os.path.join(prefix, "share/doc/viworks/viworks.conf.example"),
            "--http-addr", "127.0.0.1", "--http-port", str(free_port()), "--ws-addr", "127.0.0.1",
            "--ws-port", str(free_port()), "--admin-endpoint", f"tcp://127.0.0.1:{free_port()}",
            "--events-endpoint", f"tcp://127.0.0.1:{free_port()}"]
    p = subprocess.Popen(args, cwd=work, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, VIWORKS_ADMIN_PASSWORD="appliance-test-password"))
    ready = False
    for line in p.stderr:
        if "ready in" in line:
            ready = True
            break
    check(ready, "the backend did not start on the example config")
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=30)
    check(p.returncode == 0, f"exit code {p.returncode} after SIGTERM")
    check(os.path.exists(os.path.join(work, "data/viworks.db")), "no database in the state directory")

    # --help names every flag of the settings table.
    help_text = subprocess.run([backend, "--help"], capture_output=True, text=True).stdout
    ops = open(os.path.join(TOP, "docs/operations.md")).read()
    flags = set(re.findall(r"^\|[^|]*\| `(--[a-z0-9-]+)`", ops, re.M))
    flags |= set(re.findall(r"^\|[^|]*\| `--[a-z0-9-]+` / `(--[a-z0-9-]+)`", ops, re.M))
    check(len(flags) > 30, f"only {len(flags)} flags found in docs/operations.md")
    missing = sorted(f for f in flags if f not in help_text)
    check(not missing, f"--help does not name {missing}")
finally:
    shutil.rmtree(prefix, ignore_errors=True)

print(f"{'FAILED' if FAILED else 'ok'}: appliance checked ({len(FAILED)} problem(s))")
sys.exit(1 if FAILED else 0)
