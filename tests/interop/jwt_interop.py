#!/usr/bin/python3
"""jwt_interop - proves edge/vw_jwt interoperates with an independent JWT
library: PyJWT, as packaged by Debian (python3-jwt).

    /usr/bin/python3 tests/interop/jwt_interop.py PATH/TO/jwt_tool

Tokens minted by PyJWT must verify with jwt_tool (and the bad ones must be
refused for the right reason); tokens minted by jwt_tool must decode with
jwt.decode (token, key, algorithms=["HS256"]) to the same claims, and be
byte-identical to PyJWT's for the same claims in the same order. Prints
"N passed, M failed" and exits non-zero on any failure.
"""
import base64
import json
import subprocess
import sys
import time

try:
    import jwt
except ImportError:
    print("jwt_interop: PyJWT missing: apt-get install python3-jwt", file=sys.stderr)
    sys.exit(2)

if len(sys.argv) != 2:
    print("usage: jwt_interop.py PATH/TO/jwt_tool", file=sys.stderr)
    sys.exit(2)

TOOL = sys.argv[1]
NOW = int(time.time())
KEYS = ["secret", "k", "0123456789abcdef0123456789abcdef", "a" * 100, "p\u00e4ss w\u00f6rd"]
passed = 0
failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL %s %s" % (name, detail))


def b64url(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def tool(*args):
    res = subprocess.run([TOOL] + [str(a) for a in args], capture_output=True, timeout=30)
    return res.returncode, res.stdout.decode("utf-8"), res.stderr.decode("utf-8", "replace")


def tool_sign(key, sub, role, iat, exp, jti=None, gen=None):
    args = ["sign", key, sub, role, iat, exp] + ([jti] if jti is not None else [])
    args += [gen] if gen is not None else []
    rc, out, err = tool(*args)
    if rc != 0:
        raise RuntimeError("jwt_tool sign failed: %s" % err.strip())
    return out.strip()


def tool_verify(key, token, now=None, skew=None):
    """Returns (rc, status name, claims dict parsed from key=value lines)."""
    args = ["verify", key, token, NOW if now is None else now]
    if skew is not None:
        args.append(skew)
    rc, out, _ = tool(*args)
    lines = out.split("\n")
    fields = {}
    for line in lines[1:]:
        if "=" in line:
            k, v = line.split("=", 1)
            fields[k] = v
    return rc, fields.get("status"), fields


def expect_verify(name, key, token, status, **want):
    rc, got, fields = tool_verify(key, token)
    ok = (rc == 0) == (status == "ok") and got == status
    for k, v in want.items():
        ok = ok and fields.get(k) == str(v)
    check(name, ok, "rc=%d status=%s fields=%r" % (rc, got, fields))


def py_token(key, payload, headers=None, algorithm="HS256"):
    token = jwt.encode(payload, key, algorithm=algorithm, headers=headers)
    return token if isinstance(token, str) else token.decode("ascii")


def hand_token(header, payload, sig=""):
    return "%s.%s.%s" % (b64url(json.dumps(header)), b64url(json.dumps(payload)), sig)


def claims(sub="alice", role="operator", iat=None, exp=None, **extra):
    c = {"sub": sub, "role": role, "iat": NOW - 10 if iat is None else iat,
         "exp": NOW + 3600 if exp is None else exp}
    c.update(extra)
    return c


def expect_raises(name, exception, fn):
    try:
        fn()
        check(name, False, "no exception")
    except exception:
        check(name, True)
    except Exception as e:
        check(name, False, repr(e))


def main():
    # ------------------------------------------------------------------------
    # PyJWT mints, jwt_tool verifies

    for key in KEYS:
        for role in ("admin", "operator", "viewer"):
            t = py_token(key, claims(role=role, jti="j-%s" % role))
            expect_verify("pyjwt->tool key=%r role=%s" % (key[:8], role), key, t, "ok",
                          sub="alice", role=role, exp=NOW + 3600, iat=NOW - 10, jti="j-" + role)

    expect_verify("pyjwt->tool nbf past, no iat", "secret",
                  py_token("secret", {"sub": "bob", "role": "viewer", "exp": NOW + 60,
                                      "nbf": NOW - 60}),
                  "ok", sub="bob", role="viewer", nbf=NOW - 60)
    expect_verify("pyjwt->tool unicode sub", "secret",
                  py_token("secret", claims(sub="b\u00e9r\u00e9nice \U0001F600 \"q\" \\ /")),
                  "ok", sub="b\u00e9r\u00e9nice \U0001F600 \"q\" \\ /")
    expect_verify("pyjwt->tool extra claims and headers", "secret",
                  py_token("secret", claims(iss="viworks", aud=["api"], extra={"a": [1, 2]}),
                           headers={"kid": "key-1"}),
                  "ok", sub="alice")
    expect_verify("pyjwt->tool 127-byte sub", "secret", py_token("secret", claims(sub="s" * 127)),
                  "ok", sub="s" * 127)

    # Refusals, each for its own reason.
    expect_verify("pyjwt->tool wrong key", "secret", py_token("Secret", claims()), "bad_signature")
    expect_verify("pyjwt->tool wrong key (long)", "a" * 100, py_token("a" * 99 + "b", claims()),
                  "bad_signature")
    expect_verify("pyjwt->tool expired", "secret",
                  py_token("secret", claims(iat=NOW - 7200, exp=NOW - 3600)), "expired")
    expect_verify("pyjwt->tool exp == now", "secret", py_token("secret", claims(exp=NOW)),
                  "expired")
    rc, got, _ = tool_verify("secret", py_token("secret", claims(exp=NOW)), skew=60)
    check("pyjwt->tool exp == now within skew", rc == 0 and got == "ok", got)
    expect_verify("pyjwt->tool nbf future", "secret",
                  py_token("secret", claims(nbf=NOW + 600)), "not_yet_valid")
    expect_verify("pyjwt->tool iat future", "secret",
                  py_token("secret", claims(iat=NOW + 600)), "not_yet_valid")
    expect_verify("pyjwt->tool missing exp", "secret",
                  py_token("secret", {"sub": "alice", "role": "admin"}), "missing_exp")
    expect_verify("pyjwt->tool bad role", "secret",
                  py_token("secret", claims(role="root")), "bad_claims")
    expect_verify("pyjwt->tool missing sub", "secret",
                  py_token("secret", {"role": "admin", "exp": NOW + 60}), "bad_claims")
    expect_verify("pyjwt->tool float exp", "secret",
                  py_token("secret", claims(exp=NOW + 60.5)), "bad_claims")
    for alg in ("HS384", "HS512"):
        expect_verify("pyjwt->tool alg %s" % alg, "secret",
                      py_token("secret", claims(), algorithm=alg), "bad_alg")
    try:
        none_token = py_token(None, claims(), algorithm="none")
        expect_verify("pyjwt->tool alg none (PyJWT)", "secret", none_token, "bad_alg")
    except Exception as e:  # an older PyJWT may refuse to mint it; the hand-made ones remain
        print("note: PyJWT would not mint alg none: %s" % e)

    good = py_token("secret", claims())
    good_sig = good.rsplit(".", 1)[1]
    for header in ({"alg": "none", "typ": "JWT"}, {"alg": "none"}, {"alg": "None"},
                   {"alg": "NONE"}, {"alg": "hs256"}, {"typ": "JWT"}):
        for sig in ("", good_sig):
            expect_verify("hand alg=%r sig=%s" % (header.get("alg"), "yes" if sig else "no"),
                          "secret", hand_token(header, claims(), sig), "bad_alg")
    expect_verify("hand alg none, two parts", "secret",
                  hand_token({"alg": "none"}, claims()).rstrip("."), "malformed")

    # Tampering with a PyJWT token: claims swapped under the original signature,
    # padding added, signature cut.
    h, p, s = good.split(".")
    forged = "%s.%s.%s" % (h, b64url(json.dumps(claims(role="admin"), separators=(",", ":"))), s)
    expect_verify("pyjwt->tool forged payload", "secret", forged, "bad_signature")
    expect_verify("pyjwt->tool padded", "secret", good + "=", "malformed")
    expect_verify("pyjwt->tool padded header", "secret", "%s=.%s.%s" % (h, p, s), "malformed")
    expect_verify("pyjwt->tool padded payload", "secret", "%s.%s==.%s" % (h, p, s), "malformed")
    expect_verify("pyjwt->tool whitespace", "secret", "%s.%s .%s" % (h, p, s), "malformed")
    expect_verify("pyjwt->tool signature cut", "secret", good[:-2], "malformed")

    # ------------------------------------------------------------------------
    # jwt_tool mints, PyJWT verifies

    for key in KEYS:
        for role in ("admin", "operator", "viewer"):
            name = "tool->pyjwt key=%r role=%s" % (key[:8], role)
            t = tool_sign(key, "alice", role, NOW - 10, NOW + 3600)
            try:
                decoded = jwt.decode(t, key, algorithms=["HS256"])
                header = jwt.get_unverified_header(t)
                ok = (decoded["sub"] == "alice" and decoded["role"] == role
                      and decoded["iat"] == NOW - 10 and decoded["exp"] == NOW + 3600
                      and isinstance(decoded["jti"], str) and len(decoded["jti"]) == 22
                      and set(decoded) == {"sub", "role", "iat", "exp", "jti"}
                      and header == {"alg": "HS256", "typ": "JWT"})
                check(name, ok, repr((decoded, header)))
            except Exception as e:
                check(name, False, repr(e))

    # Byte for byte: same claims, same order, same token.
    for key, sub, jti in (("secret", "alice", "vector-1"), ("a" * 100, "bob", "x"),
                          ("k", "b\u00e9r\u00e9nice \U0001F600 \"q\"\\\n\x7f\t", "j\u00fc"),
                          ("secret", "s" * 127, "j" * 79)):
        mine = tool_sign(key, sub, "viewer", NOW - 10, NOW + 3600, jti)
        theirs = py_token(key, {"sub": sub, "role": "viewer", "iat": NOW - 10,
                                "exp": NOW + 3600, "jti": jti})
        check("byte-exact sub=%r" % sub[:12], mine == theirs, "\n  ours   %s\n  pyjwt  %s"
              % (mine, theirs))
        try:
            check("tool->pyjwt decode sub=%r" % sub[:12],
                  jwt.decode(mine, key, algorithms=["HS256"])["sub"] == sub)
        except Exception as e:
            check("tool->pyjwt decode sub=%r" % sub[:12], False, repr(e))

    # The API's tokens carry the user's token generation as "gen" (issue 8).
    for gen in (0, 1, 9007199254740991):
        mine = tool_sign("secret", "alice", "operator", NOW - 10, NOW + 3600, "j-gen", gen)
        theirs = py_token("secret", {"sub": "alice", "role": "operator", "iat": NOW - 10,
                                     "exp": NOW + 3600, "jti": "j-gen", "gen": gen})
        check("byte-exact gen=%d" % gen, mine == theirs, "\n  ours   %s\n  pyjwt  %s" % (mine, theirs))
        try:
            check("tool->pyjwt gen=%d" % gen,
                  jwt.decode(mine, "secret", algorithms=["HS256"])["gen"] == gen)
        except Exception as e:
            check("tool->pyjwt gen=%d" % gen, False, repr(e))
        rc, got, fields = tool_verify("secret", theirs)
        check("pyjwt->tool gen=%d" % gen, rc == 0 and fields.get("gen") == str(gen), (got, fields))
    for bad in (-1, "7", 1.5):
        t = py_token("secret", {"sub": "alice", "role": "viewer", "exp": NOW + 60, "gen": bad})
        rc, got, _ = tool_verify("secret", t)
        check("pyjwt->tool gen=%r refused" % (bad,), rc != 0 and got == "bad_claims", got)

    t = tool_sign("secret", "alice", "admin", NOW - 10, NOW + 3600)
    expect_raises("tool->pyjwt wrong key refused", jwt.InvalidSignatureError,
                  lambda: jwt.decode(t, "Secret", algorithms=["HS256"]))
    expect_raises("tool->pyjwt HS384 only refused", jwt.InvalidAlgorithmError,
                  lambda: jwt.decode(t, "secret", algorithms=["HS384"]))
    t = tool_sign("secret", "alice", "admin", NOW - 7200, NOW - 3600)
    expect_raises("tool->pyjwt expired refused", jwt.ExpiredSignatureError,
                  lambda: jwt.decode(t, "secret", algorithms=["HS256"]))
    # Our own expired token is refused by us too, and accepted by both with leeway.
    rc, got, _ = tool_verify("secret", t)
    check("tool->tool expired", rc != 0 and got == "expired", got)
    try:
        jwt.decode(t, "secret", algorithms=["HS256"], leeway=7200)
        rc, got, _ = tool_verify("secret", t, skew=7200)
        check("expired token within leeway in both", rc == 0 and got == "ok", got)
    except Exception as e:
        check("expired token within leeway in both", False, repr(e))


try:
    main()
except Exception as e:  # a crash of the tool or of this script is a failure, not a hang
    check("interop run", False, repr(e))

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
