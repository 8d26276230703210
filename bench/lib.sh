# Shared by the bench/*.sh scripts (sourced): clocks, ports, CPU ticks,
# medians, and a work directory whose processes are stopped on exit.

now_ms() { # no fork: the machine is busy enough during a run
  local t=${EPOCHREALTIME//[!0-9]/}
  echo $((t / 1000))
}
# A free loopback port (the backend may also pick its own with port 0).
port() { "${py:-python3}" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
ticks() { # utime + stime of the whole process, in clock ticks
  local s
  s=$(<"/proc/$1/stat")
  s=${s##*) }
  # shellcheck disable=SC2086 # fields on purpose
  set -- $s
  echo $((${12} + ${13}))
}
busy() { # busy ticks of the whole machine (all CPUs), for the "rest" figures
  local _ u n s irq sirq rest
  read -r _ u n s _ _ irq sirq rest </proc/stat
  echo $((u + n + s + irq + sirq))
}
median() { sort -g | awk '{a[NR] = $1} END {if (NR) print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }
calc() { awk "BEGIN {printf \"%.${2:-1}f\", $1}"; }

# bench_workdir NAME: $work, a fresh directory removed on exit, and $pids,
# the processes to stop (SIGTERM, then wait) on exit.
bench_workdir() {
  work=$(mktemp -d "/tmp/vw-bench-$1.XXXXXX")
  pids=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}
bench_cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
stop() { # SIGTERM, wait; sets rc to the exit status and forgets the pid
  rc=0
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" || rc=$?
  local keep=() p
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}

# bench_need CMD:PKG ...: installs (apt-get) the Debian package of each
# command or python module that is missing; "py:MODULE:PKG" for a module.
bench_need() {
  local missing=() spec
  for spec in "$@"; do
    case $spec in
      py:*) local m=${spec#py:}; "${py:-python3}" -c "import ${m%%:*}" 2>/dev/null || missing+=("${m#*:}") ;;
      *) command -v "${spec%%:*}" >/dev/null 2>&1 || [ -x "${spec%%:*}" ] || [ -x "/usr/sbin/${spec%%:*}" ] || missing+=("${spec#*:}") ;;
    esac
  done
  if ((${#missing[@]})); then
    echo "installing ${missing[*]}" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}
# bench_build [cmake options]: the release build in build-release/ (incremental).
bench_build() {
  if [ ! -f "$top/build-release/CMakeCache.txt" ]; then
    cmake -S "$top" -B "$top/build-release" -DCMAKE_BUILD_TYPE=Release -DVW_TESTS=OFF "$@" >/dev/null
  fi
  cmake --build "$top/build-release" -j2 >/dev/null
}
# bench_nofile N: every process started afterwards may open N + 200 files
# (65536 where root may raise the hard limit, else the hard limit); sets
# $nofile, fails if that is too low.
bench_nofile() {
  if ! ulimit -n 65536 2>/dev/null; then
    ulimit -Sn "$(ulimit -Hn)"
  fi
  nofile=$(ulimit -Sn)
  [ "$nofile" = unlimited ] && nofile=1048576
  ((nofile >= $1 + 200)) || { echo "ulimit -n is $nofile (hard limit): too low for $1 agents" >&2; exit 1; }
}
# bench_wait_health PORT: until the backend's GET /health answers 200 (5 s).
bench_wait_health() {
  local _
  for _ in $(seq 500); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/health")" = 200 ] && return 0
    sleep 0.01
  done
  return 1
}
# bench_commands_setup: build-release/ with -DVW_BENCH=ON (the backend, the
# agent, commands-load: $backend, $agent, $load), this run's secrets in the
# environment (commands-load logs in as admin with VIWORKS_ADMIN_PASSWORD;
# the backend takes no secret as a flag), $hz.
bench_commands_setup() {
  cmake -S "$top" -B "$top/build-release" -DCMAKE_BUILD_TYPE=Release -DVW_TESTS=OFF -DVW_BENCH=ON >/dev/null
  cmake --build "$top/build-release" -j2 --target viworks-backend viworks-agent commands-load >/dev/null
  backend="$top/build-release/viworks-backend"
  agent="$top/build-release/viworks-agent"
  load="$top/build-release/commands-load"
  JWT_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '=+/')
  VIWORKS_ADMIN_PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -d '=+/')
  export JWT_SECRET VIWORKS_ADMIN_PASSWORD
  hz=$(getconf CLK_TCK)
}
