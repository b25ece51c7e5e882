# Case "h1-resilience": what outrigger's resilience features cost on the success path. Outrigger
# only, as two variants measured side by side in the same interleaved rounds (a b a b ...):
#   outrigger            peers/outrigger-h1-plain.yaml: defaults (round_robin, no retry policy,
#                        no outlier detection, no retry budget; default circuit breakers)
#   outrigger-resilient  peers/outrigger-h1-resilient.yaml: retry_on [connect-failure, reset,
#                        gateway-error, 5xx] with num_retries 2 and per_try_timeout 5s,
#                        lb_policy least_request, explicit circuit_breakers, retry_budget and
#                        outlier_detection
# Otherwise as h1-keepalive (wrk, plaintext HTTP/1.1 keep-alive both sides, 64-byte body), except
# that the cluster has two endpoints, two ports of the one nginx backend worker
# (peers/backend-nginx-two.conf), so that the load-balancing policy has a choice to make.
# The report's ratio column is relative to the first variant. Goal: (b) within 5 % of (a).
# Selecting outrigger (-p) selects both variants; the peers do not run in this case.
# Hooks: see case_h1_keepalive.sh, plus case_h1_resilience_proxies (see run.sh).

BENCH_CASES_KNOWN+=(h1-resilience)

CASE_RES_BACKEND_PID=""
CASE_RES_BACKEND_PORTS=()
CASE_RES_BODY=""

case_h1_resilience_describe() {
  echo "outrigger alone, default config vs retries (2, per-try timeout) + least_request + circuit breakers + retry budget + outlier detection; HTTP/1.1 keep-alive on both sides; wrk (${BENCH_CONNECTIONS} connections, ${BENCH_THREADS} thread(s)) -> proxy -> 2 endpoints (ports of one nginx 'return 200', 64-byte body)"
}

# Prints the variants to run: both when outrigger is selected, none otherwise.
case_h1_resilience_proxies() {
  local p
  for p in "$@"; do
    [[ "$p" == outrigger ]] && printf '%s\n' outrigger outrigger-resilient
  done
  return 0
}

case_h1_resilience_setup() {
  bench_require wrk nginx curl
  read -r -a CASE_RES_BACKEND_PORTS <<<"$(bench_free_ports 2)"
  local conf="$BENCH_TMP/backend-nginx-two.conf" port
  bench_render "$BENCH_PEERS_DIR/backend-nginx-two.conf" "$conf" TMP="$BENCH_TMP" \
    BACKEND_PORT="${CASE_RES_BACKEND_PORTS[0]}" BACKEND_PORT2="${CASE_RES_BACKEND_PORTS[1]}"
  bench_start_nginx CASE_RES_BACKEND_PID "$BENCH_LOAD_CPU" "$conf" backend-nginx-two
  for port in "${CASE_RES_BACKEND_PORTS[@]}"; do
    if ! bench_wait_http "http://127.0.0.1:$port/" 10 "$CASE_RES_BACKEND_PID"; then
      bench_tail_log "$BENCH_TMP/backend-nginx-two-error.log"
      bench_tail_log "$BENCH_TMP/backend-nginx-two.log"
      return 1
    fi
  done
  bench_track_tree "$CASE_RES_BACKEND_PID"
  CASE_RES_BODY="$(curl -s --max-time 2 "http://127.0.0.1:${CASE_RES_BACKEND_PORTS[0]}/")"
}

case_h1_resilience_start_proxy() {
  local proxy="$1" port="$2" template conf
  case "$proxy" in
    outrigger) template=outrigger-h1-plain.yaml ;;
    outrigger-resilient) template=outrigger-h1-resilient.yaml ;;
    *) bench_die "case h1-resilience does not know proxy '$proxy'" ;;
  esac
  conf="$BENCH_TMP/$template"
  bench_render "$BENCH_PEERS_DIR/$template" "$conf" TMP="$BENCH_TMP" LISTEN_PORT="$port" \
    BACKEND_PORT="${CASE_RES_BACKEND_PORTS[0]}" BACKEND_PORT2="${CASE_RES_BACKEND_PORTS[1]}"
  bench_spawn PROXY_PID "$BENCH_PROXY_CPU" "$BENCH_TMP/$proxy.log" \
    "$OUTRIGGER_BIN" run --config "$conf"
}

case_h1_resilience_probe() {
  bench_wait_http "http://127.0.0.1:$1/" 10 "$2" || return 1
  local body i
  # Two requests: with two endpoints each policy may pick either; both must answer.
  for i in 1 2; do
    body="$(curl -s --max-time 2 "http://127.0.0.1:$1/")"
    [[ "$body" == "$CASE_RES_BODY" ]] && continue
    bench_log "proxy on port $1 answered 200 but not the backend's body: ${body:0:120}"
    return 1
  done
}

case_h1_resilience_load() {
  local port="$1" seconds="$2" raw="$3"
  timeout $((seconds + 30)) taskset -c "$BENCH_LOAD_CPU" \
    wrk -t "$BENCH_THREADS" -c "$BENCH_CONNECTIONS" -d "${seconds}s" --latency \
    -s "$BENCH_LIB_DIR/wrk_report.lua" "http://127.0.0.1:$port/" >"$raw" 2>&1 || return 1
  bench_wrk_result "$raw"
}

case_h1_resilience_teardown() {
  [[ -n "$CASE_RES_BACKEND_PID" ]] && bench_stop_tree "$CASE_RES_BACKEND_PID"
  CASE_RES_BACKEND_PID=""
}
