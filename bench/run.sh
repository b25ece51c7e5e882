#!/usr/bin/env bash
# Side-by-side benchmark: outrigger vs HAProxy, nginx and nghttpx as reverse proxies, each with one
# worker pinned alone on one CPU while the load generator and the backend share the other.
# Measures proxy CPU-µs per request (from /proc/<pid>/stat), req/s and p50/p99 latency; several
# interleaved rounds, median per proxy. See bench/README.md.
set -euo pipefail

usage() {
  cat <<EOF
usage: bench/run.sh [options] [OUTRIGGER_BINARY]

  OUTRIGGER_BINARY        path to outrigger (or env OUTRIGGER_BIN); needed when the
                          proxy list includes outrigger, and by the TLS cases (they make
                          their certificates with 'outrigger pki')
  -d, --duration SEC      measured run per proxy and round      (BENCH_DURATION, default 10)
  -w, --warmup SEC        warm-up before each measured run      (BENCH_WARMUP, default 2)
  -r, --rounds N          interleaved rounds (A B C D A B C D..) (BENCH_ROUNDS, default 3)
  -c, --connections N     load-generator connections            (BENCH_CONNECTIONS, default 32)
  -t, --threads N         load-generator threads                (BENCH_THREADS, default 1)
  -p, --proxies LIST      comma-separated subset of: ${BENCH_ALL_PROXIES[*]}
                          (BENCH_PROXIES, default all of them), and "floor": the least
                          work any proxy can do in the case (bench_floor, next to the
                          outrigger binary or BENCH_FLOOR_BIN; h1-keepalive,
                          h1-mtls-upstream and h2c-h1 only), "floor-uring": the same on
                          io_uring (h1-keepalive only)
      --case LIST         comma-separated cases, or "all" (BENCH_CASES, default
                          h1-keepalive,h1-mtls-upstream); known: ${BENCH_CASES_KNOWN[*]}
      --tls-clients N     s_time processes of the tls-* cases   (BENCH_TLS_CLIENTS, default 4)
  -b, --baseline BIN      A/B: also run this outrigger binary as proxy "outrigger-base",
                          interleaved with the others in every round (BENCH_BASELINE_BIN)
  -o, --out DIR           output folder (BENCH_OUT, default bench/out)
      --proxy-cpu N       CPU for the proxy under test          (BENCH_PROXY_CPU, default 1)
      --load-cpu N        CPU for load generator + backend      (BENCH_LOAD_CPU, default 0)
      --keep-tmp          keep the temp folder (configs, logs) for debugging
      --syscalls          also count the proxy's system calls per request during the
                          measured run (perf stat on syscall tracepoints, needs root);
                          printed per round and kept in OUT/raw/<case>-<proxy>-rN.syscalls
                          (BENCH_SYSCALLS=1). On this VM one syscall costs ~1 µs.
  -h, --help

Outputs: a table on stdout and in OUT/results.md, OUT/results.csv (medians), OUT/rounds.csv
(every run), OUT/<case>.png (gnuplot), OUT/raw/ (load-generator output of every run).
Exit status: 0 when every selected proxy completed every round, 1 otherwise.
EOF
}

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/common.sh
source "$HERE/lib/common.sh"
# shellcheck source=lib/proxies.sh
source "$HERE/lib/proxies.sh"
BENCH_CASES_KNOWN=()
for f in "$HERE"/lib/case_*.sh; do
  # shellcheck disable=SC1090
  source "$f"
done

BENCH_DURATION="${BENCH_DURATION:-10}"
BENCH_WARMUP="${BENCH_WARMUP:-2}"
BENCH_ROUNDS="${BENCH_ROUNDS:-3}"
BENCH_CONNECTIONS="${BENCH_CONNECTIONS:-32}"
BENCH_THREADS="${BENCH_THREADS:-1}"
BENCH_PROXIES="${BENCH_PROXIES:-$(IFS=,; echo "${BENCH_ALL_PROXIES[*]}")}"
BENCH_CASES="${BENCH_CASES:-h1-keepalive,h1-mtls-upstream}"
BENCH_OUT="${BENCH_OUT:-$HERE/out}"
BENCH_PROXY_CPU="${BENCH_PROXY_CPU:-1}"
BENCH_LOAD_CPU="${BENCH_LOAD_CPU:-0}"
OUTRIGGER_BIN="${OUTRIGGER_BIN:-}"
BENCH_BASELINE_BIN="${BENCH_BASELINE_BIN:-}"
BENCH_SYSCALLS="${BENCH_SYSCALLS:-0}"
# raw_syscalls:sys_enter counts every call; the others name the ones a proxy makes per request.
BENCH_SYSCALL_EVENTS="raw_syscalls:sys_enter$(printf ',syscalls:sys_enter_%s' read readv recvfrom \
  recvmsg write writev sendto sendmsg epoll_wait epoll_pwait epoll_ctl io_uring_enter accept4 \
  close futex timerfd_settime)"

while (($#)); do
  case "$1" in
    -d | --duration) BENCH_DURATION="$2"; shift 2 ;;
    -w | --warmup) BENCH_WARMUP="$2"; shift 2 ;;
    -r | --rounds) BENCH_ROUNDS="$2"; shift 2 ;;
    -c | --connections) BENCH_CONNECTIONS="$2"; shift 2 ;;
    -t | --threads) BENCH_THREADS="$2"; shift 2 ;;
    -p | --proxies) BENCH_PROXIES="$2"; shift 2 ;;
    --case | --cases) BENCH_CASES="$2"; shift 2 ;;
    --tls-clients) BENCH_TLS_CLIENTS="$2"; shift 2 ;;
    -b | --baseline) BENCH_BASELINE_BIN="$2"; shift 2 ;;
    -o | --out) BENCH_OUT="$2"; shift 2 ;;
    --proxy-cpu) BENCH_PROXY_CPU="$2"; shift 2 ;;
    --load-cpu) BENCH_LOAD_CPU="$2"; shift 2 ;;
    --keep-tmp) BENCH_KEEP_TMP=1; shift ;;
    --syscalls) BENCH_SYSCALLS=1; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
    *) OUTRIGGER_BIN="$1"; shift ;;
  esac
done

for v in BENCH_DURATION BENCH_WARMUP BENCH_ROUNDS BENCH_CONNECTIONS BENCH_THREADS \
  BENCH_PROXY_CPU BENCH_LOAD_CPU; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || bench_die "$v must be a whole number (got '${!v}')"
done
((BENCH_DURATION >= 1 && BENCH_DURATION <= 3600)) || bench_die "duration must be 1..3600 s"
((BENCH_WARMUP <= 600)) || bench_die "warm-up must be at most 600 s"
((BENCH_ROUNDS >= 1 && BENCH_ROUNDS <= 50)) || bench_die "rounds must be 1..50"
((BENCH_CONNECTIONS >= 1 && BENCH_CONNECTIONS <= 10000)) || bench_die "connections must be 1..10000"
((BENCH_THREADS >= 1 && BENCH_THREADS <= BENCH_CONNECTIONS)) ||
  bench_die "threads must be 1..connections"

IFS=, read -r -a PROXIES <<<"$BENCH_PROXIES"
if [[ -n "$BENCH_BASELINE_BIN" ]]; then
  [[ -x "$BENCH_BASELINE_BIN" ]] || bench_die "baseline binary '$BENCH_BASELINE_BIN' is not executable"
  BENCH_BASELINE_BIN="$(cd "$(dirname "$BENCH_BASELINE_BIN")" && pwd)/$(basename "$BENCH_BASELINE_BIN")"
  # Right after outrigger, so every round runs the two back to back.
  with_base=()
  for p in "${PROXIES[@]}"; do
    with_base+=("$p")
    [[ "$p" == outrigger ]] && with_base+=(outrigger-base)
  done
  [[ " ${with_base[*]} " == *" outrigger-base "* ]] || bench_die "--baseline needs outrigger in the proxy list"
  PROXIES=("${with_base[@]}")
  BENCH_PROXIES="$(IFS=,; echo "${PROXIES[*]}")"
fi
[[ "$BENCH_CASES" == all ]] && BENCH_CASES="$(IFS=,; echo "${BENCH_CASES_KNOWN[*]}")"
IFS=, read -r -a CASES <<<"$BENCH_CASES"
for p in "${PROXIES[@]}"; do
  [[ " ${BENCH_ALL_PROXIES[*]} ${BENCH_OPTIONAL_PROXIES[*]} outrigger-base " == *" $p "* ]] ||
    bench_die "unknown proxy '$p'"
done
for c in "${CASES[@]}"; do
  [[ " ${BENCH_CASES_KNOWN[*]} " == *" $c "* ]] || bench_die "unknown case '$c'"
done
if [[ " ${PROXIES[*]} " == *" outrigger "* ]]; then
  [[ -n "$OUTRIGGER_BIN" ]] || bench_die "outrigger selected but no binary given (see --help)"
fi
# Also used without outrigger in the list: the TLS cases make their certificates with it.
if [[ -n "$OUTRIGGER_BIN" ]]; then
  [[ -x "$OUTRIGGER_BIN" ]] || bench_die "outrigger binary '$OUTRIGGER_BIN' is not executable"
  OUTRIGGER_BIN="$(cd "$(dirname "$OUTRIGGER_BIN")" && pwd)/$(basename "$OUTRIGGER_BIN")"
fi
if [[ " ${PROXIES[*]} " =~ " floor"(-uring)?" " ]]; then
  if [[ -z "${BENCH_FLOOR_BIN:-}" && -n "$OUTRIGGER_BIN" ]]; then
    BENCH_FLOOR_BIN="$(dirname "$(dirname "$OUTRIGGER_BIN")")/bench/bench_floor"
  fi
  [[ -x "${BENCH_FLOOR_BIN:-}" ]] ||
    bench_die "floor selected but no bench_floor binary (give the outrigger binary of a build with bench_floor, or BENCH_FLOOR_BIN)"
fi
cpus="$(nproc --all)"
((BENCH_PROXY_CPU < cpus && BENCH_LOAD_CPU < cpus)) ||
  bench_die "CPUs $BENCH_PROXY_CPU/$BENCH_LOAD_CPU do not exist (nproc: $cpus)"
((BENCH_PROXY_CPU != BENCH_LOAD_CPU)) || bench_log "warning: proxy and load share CPU $BENCH_PROXY_CPU"
bench_require taskset curl python3
[[ "$BENCH_SYSCALLS" == 1 ]] && bench_require perf
for p in "${PROXIES[@]}"; do [[ "$p" == outrigger* || "$p" == floor* ]] || bench_require "$p"; done

bench_make_tmp
bench_install_traps
bench_raise_nofile
mkdir -p "$BENCH_OUT/raw"
ROUNDS_CSV="$BENCH_OUT/rounds.csv"
echo "case,round,proxy,status,requests,duration_s,rps,p50_us,p99_us,errors,cpu_ticks,cpu_us_per_req,proxy_cpu_pct,processes,proxy_cpu_other_pct,sys_us_per_req,load_cpu_us_per_req,load_cpu_pct" \
  >"$ROUNDS_CSV"

# run_one CASE ID PROXY ROUND : one start/probe/warm-up/measure/stop cycle; appends to ROUNDS_CSV.
run_one() {
  local case="$1" id="$2" proxy="$3" round="$4" port raw pids result t0 t1 s0 s1 c0 c1 l0 l1 w0 w1
  local perf_pid=""
  port="$(bench_free_ports 1)"
  raw="$BENCH_OUT/raw/$case-$proxy-r$round.txt"
  PROXY_PID=""
  if [[ "$proxy" == floor* ]]; then
    bench_start_floor "$id" "$proxy" "$port"
  else
    "case_${id}_start_proxy" "$proxy" "$port"
  fi
  if ! "case_${id}_probe" "$port" "$PROXY_PID"; then
    bench_tail_log "$BENCH_TMP/$proxy.log"
    bench_tail_log "$BENCH_TMP/$proxy-error.log"
    bench_stop_tree "$PROXY_PID"
    return 1
  fi
  bench_track_tree "$PROXY_PID"

  if ((BENCH_WARMUP > 0)); then
    "case_${id}_load" "$port" "$BENCH_WARMUP" "$BENCH_TMP/warmup.txt" >/dev/null || {
      bench_log "$proxy: warm-up failed"; bench_tail_log "$BENCH_TMP/warmup.txt"
      bench_stop_tree "$PROXY_PID"; return 1; }
  fi
  # Taken after the warm-up so processes a proxy spawns lazily are accounted too.
  mapfile -t pids < <(bench_tree "$PROXY_PID")
  if [[ "${pids[0]:-}" != "$PROXY_PID" ]]; then
    bench_log "$proxy: process $PROXY_PID is gone"; bench_stop_tree "$PROXY_PID"; return 1
  fi
  t0="$(bench_cpu_ticks "${pids[@]}")" || { bench_stop_tree "$PROXY_PID"; return 1; }
  s0="${t0#* }" t0="${t0% *}"
  c0="$(bench_cpu_busy_ticks "$BENCH_PROXY_CPU")"
  l0="$(bench_cpu_busy_ticks "$BENCH_LOAD_CPU")"
  w0="$(date +%s%N)"
  if [[ "$BENCH_SYSCALLS" == 1 ]]; then
    perf stat -x, -o "${raw%.txt}.perf" -p "$(IFS=,; echo "${pids[*]}")" \
      -e "$BENCH_SYSCALL_EVENTS" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  if ! result="$("case_${id}_load" "$port" "$BENCH_DURATION" "$raw")"; then
    bench_log "$proxy: load run failed"; bench_tail_log "$raw"
    [[ -n "$perf_pid" ]] && { kill -INT "$perf_pid" 2>/dev/null; wait "$perf_pid" || true; }
    bench_stop_tree "$PROXY_PID"; return 1
  fi
  if [[ -n "$perf_pid" ]]; then
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" || true
  fi
  t1="$(bench_cpu_ticks "${pids[@]}")" || {
    bench_log "$proxy: one of its processes (${pids[*]}) died during the run"
    bench_stop_tree "$PROXY_PID"; return 1; }
  s1="${t1#* }" t1="${t1% *}"
  c1="$(bench_cpu_busy_ticks "$BENCH_PROXY_CPU")"
  l1="$(bench_cpu_busy_ticks "$BENCH_LOAD_CPU")"
  w1="$(date +%s%N)"
  bench_stop_tree "$PROXY_PID"

  local -A r=()
  local kv
  for kv in $result; do r[${kv%%=*}]="${kv#*=}"; done
  ((r[requests] > 0)) || { bench_log "$proxy: no request completed"; return 1; }
  python3 - "$case" "$round" "$proxy" "${r[requests]}" "${r[duration_us]}" "${r[p50_us]}" \
    "${r[p99_us]}" "${r[errors]}" "$((t1 - t0))" "$BENCH_CLK_TCK" "$((w1 - w0))" \
    "${#pids[@]}" "$((c1 - c0))" "$((s1 - s0))" "$((l1 - l0))" >>"$ROUNDS_CSV" <<'EOF'
import sys
(case, rnd, proxy, req, dur_us, p50, p99, errors, ticks, hz, wall_ns, nproc, cpu_busy,
 sys_ticks, load_busy) = sys.argv[1:]
req, dur_s, wall_us = int(req), int(dur_us) / 1e6, int(wall_ns) / 1e3
def us(t):  # clock ticks to µs
  return int(t) * 1e6 / int(hz)
cpu_us, load_us = us(ticks), us(load_busy)
# Whatever else ran on the proxy's CPU during the run (other users' builds, kernel work).
other_pct = max(0.0, 100 * (us(cpu_busy) - cpu_us) / wall_us)
print(f"{case},{rnd},{proxy},ok,{req},{dur_s:.3f},{req / dur_s:.1f},{p50},{p99},{errors},"
      f"{ticks},{cpu_us / req:.4f},{100 * cpu_us / wall_us:.1f},{nproc},{other_pct:.1f},"
      f"{us(sys_ticks) / req:.4f},{load_us / req:.4f},{100 * load_us / wall_us:.1f}")
EOF
  tail -1 "$ROUNDS_CSV" | awk -F, -v p="$proxy" -v r="$round" \
    '{p50 = $8 == "" ? "-" : $8; p99 = $9 == "" ? "-" : $9
      printf "  round %s %-9s %10.0f req/s  p50 %s µs  p99 %s µs  %.2f CPU-µs/req, %.2f in the kernel  (proxy CPU %s%%, others on its CPU %s%%; load CPU %.2f µs/req at %s%%; errors %s)\n", r, p, $7, p50, p99, $12, $16, $13, $15, $17, $18, $10}' >&2
  if [[ -n "$perf_pid" ]]; then
    python3 "$HERE/lib/syscalls_report.py" "${raw%.txt}.perf" "${r[requests]}" \
      >"${raw%.txt}.syscalls" && sed 's/^/    /' "${raw%.txt}.syscalls" >&2
  fi
}

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "machine: $(nproc --all) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r)"
  echo "settings: ${BENCH_DURATION} s measured + ${BENCH_WARMUP} s warm-up per run, ${BENCH_ROUNDS} interleaved round(s), ${BENCH_CONNECTIONS} connections, ${BENCH_THREADS} load thread(s); proxy on CPU ${BENCH_PROXY_CPU}, load generator + backend on CPU ${BENCH_LOAD_CPU}"
  echo "versions: $(bench_versions "$OUTRIGGER_BIN" | paste -sd ';' | sed 's/;/, /g')"
  echo "source tree: git $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo '?') (the binary may include uncommitted changes)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$BENCH_TMP/meta.txt"
cat "$BENCH_TMP/meta.txt" >&2

describe_args=()
any_failed=0
for case in "${CASES[@]}"; do
  id="${case//-/_}"
  # A case may run its own list of proxies (variants such as outrigger-resilient) derived from the
  # selected ones: optional hook case_<id>_proxies SELECTED... prints one name per line.
  case_proxies=("${PROXIES[@]}")
  if declare -F "case_${id}_proxies" >/dev/null; then
    mapfile -t case_proxies < <("case_${id}_proxies" "${PROXIES[@]}")
    if ((${#case_proxies[@]} == 0)); then
      bench_log "case $case: none of the selected proxies (${PROXIES[*]}) runs in it; skipped"
      continue
    fi
  fi
  for f in "${BENCH_OPTIONAL_PROXIES[@]}"; do
    if [[ " ${case_proxies[*]} " == *" $f "* ]] && ! declare -F "$(bench_floor_hook "$id" "$f")" >/dev/null; then
      bench_log "case $case: has no $f; skipped"
      mapfile -t case_proxies < <(printf '%s\n' "${case_proxies[@]}" | grep -vx "$f")
    fi
  done
  ((${#case_proxies[@]} > 0)) || continue
  describe_args+=(--describe "$case=$("case_${id}_describe")")
  bench_log "case $case: $("case_${id}_describe")"
  "case_${id}_setup" || bench_die "case $case: backend setup failed"
  declare -A failed=()
  for ((round = 1; round <= BENCH_ROUNDS; round++)); do
    for proxy in "${case_proxies[@]}"; do
      if [[ -n "${failed[$proxy]:-}" ]]; then
        echo "$case,$round,$proxy,skipped,,,,,,,,,,,,,," >>"$ROUNDS_CSV"
        continue
      fi
      if ! run_one "$case" "$id" "$proxy" "$round"; then
        # A proxy that fails once is not retried: a broken build should not stall the run.
        bench_log "case $case round $round: $proxy FAILED; skipping it in later rounds"
        echo "$case,$round,$proxy,failed,,,,,,,,,,,,,," >>"$ROUNDS_CSV"
        failed[$proxy]=1
        any_failed=1
      fi
    done
  done
  unset failed
  "case_${id}_teardown"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$BENCH_TMP/meta.txt"

python3 "$HERE/lib/report.py" --rounds-csv "$ROUNDS_CSV" --out-dir "$BENCH_OUT" \
  --cases "$BENCH_CASES" --proxies "$BENCH_PROXIES" --meta "$BENCH_TMP/meta.txt" \
  "${describe_args[@]}"
bench_log "wrote $BENCH_OUT/results.md, results.csv, rounds.csv and the chart(s)"
exit "$any_failed"
