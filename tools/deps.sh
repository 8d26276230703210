#!/usr/bin/env bash
# Installs what is missing, from Debian's packages only. Sourced by run.sh and
# test.sh; `deps.sh run` or `deps.sh test` also works on its own.
set -euo pipefail

VW_RUNTIME_PKGS=(build-essential cmake pkg-config
  libzmq3-dev libczmq-dev libwebsockets-dev libsqlite3-dev libmsgpack-dev
  libsodium-dev libcmocka-dev libjansson-dev libssl-dev
  libev-dev libwebsockets-evlib-ev)
# Test tools: curl for raw upgrades, clang + libclang-rt for libFuzzer and
# LeakSanitizer, sqlite3 to edit a database under test, python3-jwt as an
# independent JWT implementation, pyzmq and websocket-client as independent
# admin-socket, event-stream and agent clients; openssl makes the CA and
# certificates of the TLS tests (curl checks HTTPS with them); prometheus-client
# parses GET /metrics as a Prometheus server would; iproute2 makes the network
# namespace of the partition test.
VW_TEST_PKGS=(curl openssl ca-certificates clang libclang-rt-14-dev sqlite3 python3 python3-jwt python3-zmq python3-websocket python3-yaml python3-prometheus-client nginx iproute2)

vw_need_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "deps.sh: need root to run: $*" >&2; return 1; fi
}

vw_install_missing() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "deps.sh: installing ${missing[*]}" >&2
    vw_need_root apt-get update -qq
    vw_need_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}

vw_deps() {
  vw_install_missing "${VW_RUNTIME_PKGS[@]}"
  if [ "${1:-run}" = test ]; then
    vw_install_missing "${VW_TEST_PKGS[@]}"
    # Node runs the integration tests' independent clients (npm's `ws`).
    # Keep a node that is already there (e.g. NodeSource); otherwise Debian's.
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
      vw_install_missing nodejs npm
    fi
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then vw_deps "${1:-run}"; fi
