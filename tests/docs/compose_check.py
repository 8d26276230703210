#!/usr/bin/python3
"""compose/ checked where Docker cannot run (issue 12): docker-compose.yml
is valid YAML with the services, ports and volumes the docs describe; the
Dockerfile has a build and a runtime stage, runs as a user of its own, has
a HEALTHCHECK, and its package lists follow tools/deps.sh — every package
the build needs is in the build stage, and the runtime stage has the shared
library of each -dev package (as Debian's own package metadata names it:
the `(= version)` library dependency of the -dev package) and no -dev
package at all.

Run: /usr/bin/python3 compose_check.py SOURCE_DIR"""
import os, re, subprocess, sys

import yaml

TOP = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../..")
FAILED = []


def check(cond, what):
    if not cond:
        FAILED.append(what)


def deps_list(name):
    text = open(os.path.join(TOP, "tools/deps.sh")).read()
    m = re.search(name + r"=\(([^)]*)\)", text, re.S)
    return m.group(1).split()


def stages(dockerfile):
    """[(from line, [packages apt-get installs], [other lines])] per stage."""
    text = open(dockerfile).read().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("FROM "):
            out.append((line, [], []))
        elif out and line.startswith("RUN") and "apt-get install" in line:
            words = line.split("apt-get install", 1)[1].split("&&")[0].split()
            out[-1][1].extend(w for w in words if not w.startswith("-"))
        elif out:
            out[-1][2].append(line)
    return out


def library_of(dev):
    """The shared library package a -dev package pins (Depends: lib… (= v))."""
    r = subprocess.run(["dpkg-query", "-W", "-f=${Depends}", dev], capture_output=True, text=True)
    check(r.returncode == 0, f"{dev} is not installed here (tools/deps.sh installs it)")
    for dep in r.stdout.split(","):
        m = re.match(r"\s*(lib[a-z0-9.+-]+) \(= ", dep)
        if m:
            return m.group(1)
    return None


build_pkgs = deps_list("VW_RUNTIME_PKGS")
st = stages(os.path.join(TOP, "compose/Dockerfile"))
check(len(st) == 2 and " AS " in st[0][0] and st[0][0].startswith("FROM debian:12")
      and st[1][0] == "FROM debian:12", f"two Debian 12 stages: {[s[0] for s in st]}")
if len(st) == 2:
    build, run = st
    for p in build_pkgs:
        check(p in build[1], f"build stage lacks {p} (tools/deps.sh VW_RUNTIME_PKGS)")
    for p in build_pkgs:
        if p.endswith("-dev") and p != "libcmocka-dev":  # cmocka: tests only, not built
            lib = library_of(p)
            check(lib is not None, f"no library package found for {p}")
            if lib:
                check(lib in run[1], f"runtime stage lacks {lib} (the library of {p})")
        elif not p.endswith("-dev") and p.startswith("lib"):
            check(p in run[1], f"runtime stage lacks {p}")
    check(not [p for p in run[1] if p.endswith("-dev")], f"-dev packages at run time: {run[1]}")
    rest = "\n".join(run[2])
    check(re.search(r"^USER (?!root)\w+", rest, re.M), "the runtime stage runs as root")
    check("HEALTHCHECK" in rest and "/health" in rest, "no HEALTHCHECK on /health")
    check("viworks-backend" in rest and "viworksctl" in rest, "the image lacks a program")

compose = yaml.safe_load(open(os.path.join(TOP, "compose/docker-compose.yml")))
services = compose.get("services", {})
check(set(services) == {"backend", "nginx"}, f"services: {list(services)}")
backend, nginx = services.get("backend", {}), services.get("nginx", {})
check(backend.get("build", {}).get("dockerfile") == "compose/Dockerfile", "backend is not built from compose/Dockerfile")
check(any(str(v).endswith(":/data") for v in backend.get("volumes", [])), "backend keeps no /data volume")
check({"8080", "8081"} <= {str(p) for p in backend.get("expose", [])}, "backend does not expose 8080 and 8081")
check("443:443" in [str(p) for p in nginx.get("ports", [])], "nginx does not publish 443")
check(any(str(v).startswith("./nginx.conf:") for v in nginx.get("volumes", [])), "nginx does not mount ./nginx.conf")
check(backend.get("environment", {}).get("DATABASE_URL", "").startswith("sqlite:////data/"), "DATABASE_URL not in /data")
conf = open(os.path.join(TOP, "compose/nginx.conf")).read()
for needle in ("server backend:8080", "server backend:8081", "location = /ws/agent",
               "proxy_set_header Upgrade $http_upgrade", "proxy_read_timeout", "X-Forwarded-For"):
    check(needle in conf, f"compose/nginx.conf lacks '{needle}'")

for f in FAILED:
    print("not ok -", f)
print(f"{'FAILED' if FAILED else 'ok'}: compose/ checked ({len(FAILED)} problem(s))")
sys.exit(1 if FAILED else 0)
