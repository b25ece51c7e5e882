# Shared helpers for bench/run.sh and bench/footprint.sh: a private temp folder, processes started
# pinned to a CPU and stopped by PID, template rendering, readiness polling and /proc accounting.
# Sourced (not executed) by bash scripts that run with `set -euo pipefail`; single-threaded.

# shellcheck disable=SC2034 # variables used by the scripts that source this file
BENCH_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH_DIR="$(cd "$BENCH_LIB_DIR/.." && pwd)"
BENCH_PEERS_DIR="$BENCH_DIR/peers"

BENCH_TMP=""          # private folder for configs, pid files, logs; see bench_make_tmp
BENCH_KEEP_TMP=0      # 1: leave BENCH_TMP in place at exit (for debugging)
BENCH_PIDS=()         # every process this script started (plus their children), in start order
BENCH_CLEANED=0
BENCH_CLK_TCK="$(getconf CLK_TCK)"

bench_log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
bench_die() { bench_log "error: $*"; exit 1; }

bench_require() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || bench_die "'$tool' not found (run scripts/install-deps.sh)"
  done
}

bench_make_tmp() {
  BENCH_TMP="$(mktemp -d "${TMPDIR:-/tmp}/outrigger-bench.XXXXXX")"
}

# Prints N distinct free TCP ports on 127.0.0.1 (bound together, so they cannot repeat).
bench_free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# bench_render TEMPLATE OUT KEY=VALUE... : replaces every @KEY@ and refuses leftovers.
bench_render() {
  local template="$1" out="$2" kv key value
  shift 2
  [[ -f "$template" ]] || bench_die "missing template $template"
  cp "$template" "$out"
  for kv in "$@"; do
    key="${kv%%=*}"
    value="${kv#*=}"
    sed -i "s|@${key}@|${value//|/\\|}|g" "$out"
  done
  if grep -q '@[A-Z_]*@' "$out"; then
    bench_die "unfilled placeholder in $out: $(grep -o '@[A-Z_]*@' "$out" | head -1)"
  fi
}

# Processes are remembered as "PID:STARTTIME" (field 22 of /proc/PID/stat), and signalled only
# while that PID still has that start time, so a PID recycled by someone else is never touched.
bench_starttime() {
  local line rest
  local -a f
  { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
  [[ -n "$line" ]] || return 1
  rest="${line##*) }"
  read -r -a f <<<"$rest"
  echo "${f[19]}" # rest starts at field 3 (state); starttime is field 22
}

# True while ENTRY ("PID:STARTTIME") is the same live, non-zombie process.
bench_owned_alive() {
  local pid="${1%%:*}" start="${1#*:}" now
  [[ -n "$pid" ]] || return 1
  now="$(bench_starttime "$pid")" || return 1
  [[ "$now" == "$start" ]] || return 1
  ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null
}

bench_alive() {
  [[ -n "$1" && -d /proc/$1 ]] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}

bench_remember() {
  local entry
  entry="$1:$(bench_starttime "$1")" || return 0
  [[ " ${BENCH_PIDS[*]} " == *" $entry "* ]] || BENCH_PIDS+=("$entry")
}

# bench_spawn VAR CPU LOG CMD... : starts CMD pinned to CPU (taskset execs, so $! is CMD's own
# PID), stdout+stderr to LOG, remembers it for cleanup and stores the PID in the variable VAR.
bench_spawn() {
  local __var="$1" cpu="$2" log="$3"
  shift 3
  taskset -c "$cpu" "$@" >"$log" 2>&1 </dev/null &
  local pid=$!
  bench_remember "$pid"
  printf -v "$__var" '%s' "$pid"
}

# Prints PID and all its live descendants, one per line (one /proc scan, then a bounded walk).
# Processes that come and go during the scan (other users' builds) are skipped.
bench_tree() {
  local root="$1" f line rest pid ppid
  local -A children=()
  for f in /proc/[0-9]*/stat; do
    { read -r line <"$f"; } 2>/dev/null || continue
    pid="${line%% *}"
    rest="${line##*) }" # fields from "state" on; comm may hold spaces or ')'
    read -r _ ppid _ <<<"$rest" || continue
    [[ "$pid" =~ ^[0-9]+$ && "$ppid" =~ ^[0-9]+$ ]] || continue
    children[$ppid]+="$pid "
  done
  local queue=("$root") out=() i=0 p c
  while ((i < ${#queue[@]} && i < 4096)); do
    p="${queue[$i]}"
    i=$((i + 1))
    bench_alive "$p" || continue
    out+=("$p")
    for c in ${children[$p]:-}; do queue+=("$c"); done
  done
  ((${#out[@]})) && printf '%s\n' "${out[@]}"
  return 0
}

# Remembers the children of an already started process (nginx workers, nghttpx's worker).
bench_track_tree() {
  local p
  for p in $(bench_tree "$1"); do bench_remember "$p"; done
}

# bench_stop_entries ENTRY... : SIGTERM to the first entry only (a master stops its own workers;
# signalling workers too makes masters respawn them or leaves zombies), then waits up to 5 s for
# every entry to be gone, then SIGTERM/SIGKILL to whatever is left. Reaps our direct children.
bench_stop_entries() {
  local e i left
  (($#)) || return 0
  bench_owned_alive "$1" && kill -TERM "${1%%:*}" 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    left=0
    for e in "$@"; do bench_owned_alive "$e" && left=1; done
    ((left)) || break
    ((i == 60)) && for e in "$@"; do bench_owned_alive "$e" && kill -TERM "${e%%:*}" 2>/dev/null; done
    sleep 0.05
  done
  for e in "$@"; do
    if bench_owned_alive "$e"; then
      bench_log "pid ${e%%:*} did not stop within 5 s; sending SIGKILL"
      kill -KILL "${e%%:*}" 2>/dev/null || true
    fi
  done
  for e in "$@"; do wait "${e%%:*}" 2>/dev/null || true; done
  return 0
}

bench_forget() {
  local keep=() e
  for e in "${BENCH_PIDS[@]}"; do
    [[ " $* " == *" $e "* ]] || keep+=("$e")
  done
  BENCH_PIDS=("${keep[@]}")
}

# Stops PID (one we started) and its descendants, and forgets them.
bench_stop_tree() {
  local p entry entries=()
  [[ -n "$1" ]] || return 0
  for p in $(bench_tree "$1"); do
    entry="$p:$(bench_starttime "$p")" && entries+=("$entry")
  done
  bench_stop_entries "${entries[@]}"
  # Entries remembered earlier (e.g. a worker that was replaced since) go too, if still ours.
  local stale=() e
  for e in "${BENCH_PIDS[@]}"; do
    [[ "${e%%:*}" == "$1" ]] && stale+=("$e")
  done
  bench_forget "${entries[@]}" "${stale[@]}"
}

bench_cleanup() {
  ((BENCH_CLEANED)) && return 0
  BENCH_CLEANED=1
  local e
  # Oldest first: masters before the workers they stop themselves; every entry is waited for.
  for e in "${BENCH_PIDS[@]}"; do
    bench_owned_alive "$e" && bench_stop_entries "$e"
  done
  BENCH_PIDS=()
  if [[ -n "$BENCH_TMP" && -d "$BENCH_TMP" ]]; then
    if ((BENCH_KEEP_TMP)); then
      bench_log "kept temp folder $BENCH_TMP"
    else
      rm -rf "$BENCH_TMP"
    fi
  fi
}

# "TOTAL SYS": sums of utime+stime and of stime alone (time in the kernel), in clock ticks, of
# the given PIDs (each PID's stat covers all its threads); fails when one of them is gone.
bench_cpu_ticks() {
  local sum=0 sys=0 pid line rest
  local -a f
  for pid in "$@"; do
    { read -r line <"/proc/$pid/stat"; } 2>/dev/null || return 1
    rest="${line##*) }"
    read -r -a f <<<"$rest"
    # rest starts at field 3 (state); utime is field 14, stime field 15.
    sum=$((sum + f[11] + f[12]))
    sys=$((sys + f[12]))
  done
  echo "$sum $sys"
}

# Sum of VmRSS (KiB) of the given PIDs.
bench_rss_kib() {
  local sum=0 pid v
  for pid in "$@"; do
    v="$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null)"
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}

bench_install_traps() {
  trap 'bench_cleanup' EXIT
  trap 'bench_log "interrupted"; bench_cleanup; exit 130' INT
  trap 'bench_log "terminated"; bench_cleanup; exit 143' TERM
}

# bench_wait_http URL TIMEOUT_S PID [CURL_ARGS...] : polls every 20 ms until URL answers 200.
# Fails early when PID dies. Returns 1 on timeout.
bench_wait_http() {
  local url="$1" timeout_s="$2" pid="$3" i code
  shift 3
  local tries=$((timeout_s * 50))
  for ((i = 0; i < tries; i++)); do
    bench_alive "$pid" || { bench_log "pid $pid exited before answering $url"; return 1; }
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$@" "$url" 2>/dev/null)" || true
    [[ "$code" == 200 ]] && return 0
    sleep 0.02
  done
  bench_log "$url did not answer 200 within ${timeout_s}s (last status: ${code:-none})"
  return 1
}

# Raises the soft open-files limit as far as the hard limit allows (at most 65536).
bench_raise_nofile() {
  local hard
  hard="$(ulimit -Hn)"
  [[ "$hard" == unlimited ]] && hard=65536
  ((hard > 65536)) && hard=65536
  ulimit -n "$hard"
}

bench_tail_log() {
  [[ -f "$1" ]] || return 0
  bench_log "last lines of $1:"
  tail -n "${2:-15}" "$1" | sed 's/^/    /' >&2
}

# Reads the BENCH_RESULT line that wrk_report.lua appends to a wrk output file and prints the
# fields every case's load hook returns. Socket errors and non-2xx/3xx answers all count as errors.
bench_wrk_result() {
  local line kv
  local -A r=()
  line="$(grep '^BENCH_RESULT ' "$1" | tail -1)"
  [[ -n "$line" ]] || return 1
  for kv in ${line#BENCH_RESULT }; do r[${kv%%=*}]="${kv#*=}"; done
  local errors=$((r[err_connect] + r[err_read] + r[err_write] + r[err_status] + r[err_timeout]))
  echo "requests=${r[requests]} duration_us=${r[duration_us]} p50_us=${r[p50_us]}" \
    "p99_us=${r[p99_us]} errors=$errors"
}

# Busy clock ticks of one CPU so far (user+nice+system+irq+softirq+steal from /proc/stat):
# compared with the proxy's own ticks it shows how much else ran on the proxy's CPU.
bench_cpu_busy_ticks() {
  local name user nice system _idle _iowait irq softirq steal _
  while read -r name user nice system _idle _iowait irq softirq steal _; do
    if [[ "$name" == "cpu$1" ]]; then
      echo $((user + nice + system + irq + softirq + steal))
      return 0
    fi
  done </proc/stat
  bench_die "cpu$1 not in /proc/stat"
}

# bench_make_pki DIR : the dev PKI of the TLS cases, written once per run by `outrigger pki`
# (EC P-256 everywhere, account 222222222222):
#   bundle.pem                 root + subordinate CA: what every side trusts
#   backend.pem / .key         server leaf of the TLS backend, DNS SAN backend.bench.internal
#   proxy.pem / .key           client leaf every proxy presents upstream (mTLS);
#   proxy-combined.pem         the same chain + key in one file (HAProxy's `crt`)
#   frontend.pem / .key        server leaf of the proxies' TLS listeners, DNS SAN proxy.bench.internal
#   client.pem / .key          client leaf of the load generator (mTLS listeners)
# Needs an outrigger binary (OUTRIGGER_BIN, or `outrigger` on PATH) even when only peers are run.
bench_make_pki() {
  local dir="$1" bin="${OUTRIGGER_BIN:-}" log
  [[ -f "$dir/done" ]] && return 0
  [[ -n "$bin" ]] || bin="$(command -v outrigger 2>/dev/null || true)"
  if [[ -z "$bin" || ! -x "$bin" ]]; then
    bench_log "the TLS cases make their certificates with 'outrigger pki': pass the outrigger" \
      "binary (also with -p peers only)"
    return 1
  fi
  log="$BENCH_TMP/pki.log"
  {
    "$bin" pki init "$dir" &&
      "$bin" pki issue "$dir" --name backend --account 222222222222 --server \
        --dns backend.bench.internal &&
      "$bin" pki issue "$dir" --name proxy --account 222222222222 --client &&
      "$bin" pki issue "$dir" --name frontend --account 222222222222 --server \
        --dns proxy.bench.internal &&
      "$bin" pki issue "$dir" --name client --account 222222222222 --client
  } >"$log" 2>&1 || { bench_tail_log "$log"; return 1; }
  (
    umask 077
    cat "$dir/proxy.pem" "$dir/proxy.key" >"$dir/proxy-combined.pem"
    cat "$dir/frontend.pem" "$dir/frontend.key" >"$dir/frontend-combined.pem"
  )
  touch "$dir/done"
}
