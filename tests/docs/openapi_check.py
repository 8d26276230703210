#!/usr/bin/python3
"""docs/openapi.yaml must describe exactly the routes edge/vw_http.c serves (its route table),
and every $ref in it must resolve. Prints "N passed, M failed"."""
import re, sys, json
import yaml

top = sys.argv[1]
spec = yaml.safe_load(open(f"{top}/docs/openapi.yaml"))
source = open(f"{top}/edge/vw_http.c").read()
routes = set(re.findall(r'\{LWSHUMETH_(\w+), "([^"]+)"', source))
passed = failed = 0

def check(ok, what):
    global passed, failed
    passed += ok
    failed += not ok
    print(("ok - " if ok else "not ok - ") + what)

documented = set()
for path, item in spec["paths"].items():
    for method in item:
        if method in ("get", "post", "put", "delete", "patch"):
            documented.add((method.upper(), re.sub(r"\{[^}]+\}", "{id}", path)))
served = {(m, re.sub(r"\{[^}]+\}", "{id}", p)) for m, p in routes}
for r in sorted(served):
    check(r in documented, f"{r[0]} {r[1]} is documented")
for r in sorted(documented - served):
    check(False, f"{r[0]} {r[1]} is documented but not served")
text = json.dumps(spec)
for kind, name in sorted(set(re.findall(r"#/components/(\w+)/(\w+)", text))):
    check(name in spec.get("components", {}).get(kind, {}), f"$ref {kind}/{name} resolves")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
