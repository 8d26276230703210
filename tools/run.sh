#!/usr/bin/env bash
# Installs what is missing, builds an optimised viworks-backend and runs it on
# the embedded default (SQLite in ./data). Extra arguments go to the backend.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$top/tools/deps.sh"
vw_deps run
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=Release -DVW_TESTS=OFF >/dev/null
cmake --build "$top/build" -j"$(nproc)" >/dev/null
exec "$top/build/viworks-backend" "$@"
