#!/usr/bin/env bash
# Installs what is missing (Debian packages, npm for the test clients), builds
# with -Wall -Wextra -Werror under AddressSanitizer + UndefinedBehaviorSanitizer,
# builds the libFuzzer targets with clang, and runs the whole suite with ctest.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$top/tools/deps.sh"
vw_deps test

jobs=$(nproc)
# Test clients from npm (pinned by package-lock.json).
(cd "$top/tests/integration" && npm ci --no-audit --no-fund --loglevel=error)

# Formatting is part of the contract (.clang-format).
if command -v clang-format >/dev/null 2>&1; then
  files=$(cd "$top" && git ls-files '*.c' '*.h' 2>/dev/null || true)
  if [ -n "$files" ] && ! (cd "$top" && clang-format --dry-run -Werror $files >/dev/null 2>&1); then
    echo "test.sh: code is not clang-formatted; run: clang-format -i \$(git ls-files '*.c' '*.h')" >&2
    (cd "$top" && clang-format --dry-run $files 2>&1 | head -20) >&2
    exit 1
  fi
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# The README's run command builds an optimised binary with the default
# compiler (gcc), whose warnings differ from clang's (-Wformat-truncation
# needs the optimiser): that build must stay clean too.
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=Release -DVW_TESTS=OFF >/dev/null
cmake --build "$top/build" -j"$jobs" >/dev/null

# The sanitized build runs unit, integration and fuzz-corpus tests.
cmake -S "$top" -B "$top/build-asan" -DCMAKE_BUILD_TYPE=Debug -DVW_SANITIZE=ON \
      -DCMAKE_C_COMPILER=clang -DVW_FUZZ=ON >/dev/null
cmake --build "$top/build-asan" -j"$jobs"
ctest --test-dir "$top/build-asan" --output-on-failure -j"$jobs" "$@"
