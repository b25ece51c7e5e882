#!/usr/bin/env bash
# Instructions per request under callgrind: a deterministic A/B figure for code changes, where
# wall-clock runs on a shared 2-core machine move by ±10 % (bench/RESULTS.md, 2026-12-06).
# Each binary runs under valgrind --tool=callgrind with one worker, gets a warm-up, then N
# requests with the counters zeroed before and dumped after; user-space instructions only (the
# kernel's share is in the perf profiles). See bench/README.md.
set -euo pipefail

usage() {
  cat <<EOF
usage: bench/instructions.sh [options] OUTRIGGER_BINARY [OTHER_BINARY...]

  A binary named bench_floor is run as the case's floor (bench/README.md, "The floor").

  --case h2c|h1|h2-h2|h1-mtls
                          h2c: h2load -c 16 -m 8 over h2c prior knowledge to the nginx
                          backend (HTTP/1.1 upstream; default); h1: keep-alive HTTP/1.1
                          requests (h2load --h1 -c 16) to it; h2-h2: h2c to nghttpd
                          (cluster protocol http2), the bench's h2-h2 case; h1-mtls: the h1
                          load to the bench's mutual-TLS nginx backend (h1-mtls-upstream)
  -n, --requests N        measured requests (default 4000; 1..100000)
      --rps N             each of the 16 load connections sends at most N requests per second
                          (h2load --rps; default: as fast as the proxy answers). At full speed
                          each event-loop wake-up serves many requests (as in the wall-clock
                          bench); --rps 25 (400 requests/s, a lightly loaded sidecar) makes
                          nearly every request wake the loop, which is where per-wake-up costs
                          show
      --keep-tmp          keep the temp folder (configs, callgrind files)

Environment: BENCH_CALLGRIND_ARGS adds callgrind options, e.g. "--cache-sim=yes" for simulated
cache misses per function (callgrind_annotate --sort=DLmw,DLmr).
  -h, --help

The backends are those of the bench cases (nginx 'return 200', nghttpd with a 64-byte file). Prints one line per binary:
"<binary> <instructions per request>", and the callgrind file kept with --keep-tmp can be read
with callgrind_annotate.
EOF
}

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/common.sh
source "$HERE/lib/common.sh"
# shellcheck source=lib/proxies.sh
source "$HERE/lib/proxies.sh"
BENCH_CASES_KNOWN=()
# shellcheck source=lib/case_h1_keepalive.sh
source "$HERE/lib/case_h1_keepalive.sh"
# shellcheck source=lib/case_h2.sh
source "$HERE/lib/case_h2.sh"
# shellcheck source=lib/case_h1_mtls_upstream.sh
source "$HERE/lib/case_h1_mtls_upstream.sh"

BENCH_PROXY_CPU="${BENCH_PROXY_CPU:-1}"
BENCH_LOAD_CPU="${BENCH_LOAD_CPU:-0}"
BENCH_CONNECTIONS=1 BENCH_THREADS=1 # only used by the case's description
CASE=h2c
REQUESTS=4000
RPS=""
WARMUP=400
BINS=()
while (($#)); do
  case "$1" in
    --case) CASE="$2"; shift 2 ;;
    -n | --requests) REQUESTS="$2"; shift 2 ;;
    --rps) RPS="$2"; shift 2 ;;
    --keep-tmp) BENCH_KEEP_TMP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
    *) BINS+=("$1"); shift ;;
  esac
done
((${#BINS[@]} >= 1)) || { usage >&2; exit 2; }
[[ "$CASE" =~ ^(h2c|h1|h2-h2|h1-mtls)$ ]] || bench_die "--case must be h2c, h1, h2-h2 or h1-mtls"
[[ "$REQUESTS" =~ ^[0-9]+$ ]] && ((REQUESTS >= 1 && REQUESTS <= 100000)) ||
  bench_die "requests must be 1..100000"
[[ -z "$RPS" || ("$RPS" =~ ^[0-9]+$ && RPS -ge 1 && RPS -le 100000) ]] ||
  bench_die "--rps must be 1..100000"
for b in "${BINS[@]}"; do [[ -x "$b" ]] || bench_die "'$b' is not an executable"; done
bench_require valgrind callgrind_control callgrind_annotate h2load nginx curl taskset

bench_make_tmp
bench_install_traps
if [[ "$CASE" == h2-h2 ]]; then
  case_h2_h2_setup || bench_die "backend setup failed"
  BACKEND_PORT="$CASE_H2_BACKEND_PORT"
  CLUSTER_PROTOCOL=http2
elif [[ "$CASE" == h1-mtls ]]; then
  # The certificates come from `outrigger pki`: the first binary that is not the floor.
  OUTRIGGER_BIN=""
  for b in "${BINS[@]}"; do [[ "$(basename "$b")" == bench_floor ]] || { OUTRIGGER_BIN="$b"; break; }; done
  [[ -n "$OUTRIGGER_BIN" ]] || bench_die "the h1-mtls case needs an outrigger binary too (for its certificates)"
  case_h1_mtls_upstream_setup || bench_die "backend setup failed"
  BACKEND_PORT="$CASE_MTLS_BACKEND_PORT"
  CLUSTER_PROTOCOL=http1
  WARMUP=4000
  CLUSTER_TLS="    tls:
      sni: backend.bench.internal
      ca: $BENCH_TMP/pki/bundle.pem
      cert: $BENCH_TMP/pki/proxy.pem
      key: $BENCH_TMP/pki/proxy.key
      alpn: [http/1.1]"
else
  case_h1_keepalive_setup || bench_die "backend setup failed"
  BACKEND_PORT="$CASE_H1_BACKEND_PORT"
  CLUSTER_PROTOCOL=http1
fi

# measure BIN : prints instructions per request.
measure() {
  local bin="$1" port conf out curl_args=() load_args=() ir
  port="$(bench_free_ports 1)"
  conf="$BENCH_TMP/instructions.yaml"
  cat >"$conf" <<EOF
workers: 1
access_log: off
listeners:
  - name: bench
    address: 127.0.0.1:$port
    h2c: true
    routes: [{cluster: backend}]
clusters:
  - name: backend
    type: static
    protocol: $CLUSTER_PROTOCOL
    endpoints: [127.0.0.1:$BACKEND_PORT]
${CLUSTER_TLS:-}
EOF
  out="$BENCH_TMP/callgrind.$(basename "$bin").$$"
  rm -f "$out"*
  local cmd=("$bin" run --config "$conf")
  if [[ "$(basename "$bin")" == bench_floor ]]; then
    # The floor (bench/README.md): the same case's least work, for comparison.
    case "$CASE" in
      h2c) cmd=("$bin" --mode h2c) ;;
      h1) cmd=("$bin") ;;
      h1-mtls) cmd=("$bin" --ca "$BENCH_TMP/pki/bundle.pem" --cert "$BENCH_TMP/pki/proxy.pem"
        --key "$BENCH_TMP/pki/proxy.key" --sni backend.bench.internal) ;;
      *) bench_log "bench_floor has no $CASE case"; return 1 ;;
    esac
    cmd+=(--listen "127.0.0.1:$port" --to "127.0.0.1:$BACKEND_PORT")
  fi
  bench_spawn PROXY_PID "$BENCH_PROXY_CPU" "$BENCH_TMP/valgrind.log" \
    valgrind --tool=callgrind ${BENCH_CALLGRIND_ARGS:-} --callgrind-out-file="$out" "${cmd[@]}"
  if [[ "$CASE" != h1 && "$CASE" != h1-mtls ]]; then
    curl_args=(--http2-prior-knowledge)
    load_args=(-c 16 -m 8)
  else
    load_args=(--h1 -c 16)
  fi
  bench_wait_http "http://127.0.0.1:$port/" 60 "$PROXY_PID" "${curl_args[@]}" || {
    bench_tail_log "$BENCH_TMP/valgrind.log"
    return 1
  }
  # Warm-up: every upstream connection the load needs is opened (and, for h1-mtls, handshaken:
  # one full TLS handshake costs as much as a few hundred requests) before the counters start.
  timeout 120 taskset -c "$BENCH_LOAD_CPU" h2load "${load_args[@]}" -n "$WARMUP" \
    "http://127.0.0.1:$port/" >/dev/null
  callgrind_control -z "$PROXY_PID" >/dev/null 2>&1
  local rate_args=()
  [[ -n "$RPS" ]] && rate_args=(--rps "$RPS")
  timeout 600 taskset -c "$BENCH_LOAD_CPU" h2load "${load_args[@]}" "${rate_args[@]}" -n "$REQUESTS" \
    "http://127.0.0.1:$port/" >"$BENCH_TMP/h2load.txt"
  grep -q "succeeded, 0 failed, 0 errored" "$BENCH_TMP/h2load.txt" ||
    { cat "$BENCH_TMP/h2load.txt" >&2; bench_stop_tree "$PROXY_PID"; return 1; }
  callgrind_control -d "$PROXY_PID" >/dev/null 2>&1
  bench_stop_tree "$PROXY_PID"
  [[ -f "$out.1" ]] || { bench_log "no callgrind dump for $bin"; return 1; }
  ir="$(callgrind_annotate "$out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')"
  [[ "$ir" =~ ^[0-9]+$ ]] || { bench_log "no totals in $out.1"; return 1; }
  echo "$bin $((ir / REQUESTS))"
}

failed=0
for b in "${BINS[@]}"; do
  measure "$b" || failed=1
done
exit "$failed"
