# Case "h1-keepalive": wrk -> proxy -> backend, plaintext HTTP/1.1 with keep-alive on both sides.
# Backend: one nginx worker answering 200 with a fixed 64-byte body (bench/peers/backend-nginx.conf).
#
# Every case file defines the same six hooks, named case_<id>_<hook> where <id> is the case name
# with '-' turned into '_', and adds its name to BENCH_CASES_KNOWN. bench/run.sh sources every
# bench/lib/case_*.sh and calls, per case:
#   describe                 one line for the report
#   setup                    start backends on BENCH_LOAD_CPU (return non-zero on failure)
#   start_proxy PROXY PORT   start PROXY listening on 127.0.0.1:PORT on BENCH_PROXY_CPU; set
#                            PROXY_PID (its descendants are accounted too)
#   probe PORT PID           return 0 once the proxy answers a request through to the backend
#   load PORT SECONDS RAW    run the load generator on BENCH_LOAD_CPU; keep its full output in RAW;
#                            print one line "requests=N duration_us=N p50_us=N p99_us=N errors=N"
#   teardown                 stop what setup started

BENCH_CASES_KNOWN+=(h1-keepalive)

CASE_H1_BACKEND_PID=""
CASE_H1_BACKEND_PORT=""
CASE_H1_BODY=""  # what the backend answers; every proxy must pass it through unchanged

case_h1_keepalive_describe() {
  echo "HTTP/1.1 keep-alive on both sides; wrk (${BENCH_CONNECTIONS} connections, ${BENCH_THREADS} thread(s)) -> proxy -> nginx 'return 200' with a 64-byte body"
}

case_h1_keepalive_setup() {
  bench_require wrk nginx curl
  CASE_H1_BACKEND_PORT="$(bench_free_ports 1)"
  local conf="$BENCH_TMP/backend-nginx.conf"
  bench_render "$BENCH_PEERS_DIR/backend-nginx.conf" "$conf" \
    TMP="$BENCH_TMP" BACKEND_PORT="$CASE_H1_BACKEND_PORT"
  bench_start_nginx CASE_H1_BACKEND_PID "$BENCH_LOAD_CPU" "$conf" backend-nginx
  if ! bench_wait_http "http://127.0.0.1:$CASE_H1_BACKEND_PORT/" 10 "$CASE_H1_BACKEND_PID"; then
    bench_tail_log "$BENCH_TMP/backend-nginx-error.log"
    bench_tail_log "$BENCH_TMP/backend-nginx.log"
    return 1
  fi
  bench_track_tree "$CASE_H1_BACKEND_PID"
  CASE_H1_BODY="$(curl -s --max-time 2 "http://127.0.0.1:$CASE_H1_BACKEND_PORT/")"
}

case_h1_keepalive_start_proxy() {
  local proxy="$1" port="$2" conf=""
  case "$proxy" in
    outrigger | outrigger-base)
      bench_spawn PROXY_PID "$BENCH_PROXY_CPU" "$BENCH_TMP/$proxy.log" \
        "$(bench_outrigger_bin "$proxy")" reverse-proxy --listen "127.0.0.1:$port" \
        --to "http://127.0.0.1:$CASE_H1_BACKEND_PORT" --workers 1 --access-log off
      ;;
    haproxy) conf="$BENCH_TMP/haproxy.cfg" ;;
    nginx) conf="$BENCH_TMP/nginx.conf" ;;
    nghttpx) conf="$BENCH_TMP/nghttpx.conf" ;;
    *) bench_die "case h1-keepalive does not know proxy '$proxy'" ;;
  esac
  if [[ -n "$conf" ]]; then
    bench_render "$BENCH_PEERS_DIR/$(basename "$conf")" "$conf" \
      TMP="$BENCH_TMP" LISTEN_PORT="$port" BACKEND_PORT="$CASE_H1_BACKEND_PORT"
    bench_start_peer PROXY_PID "$proxy" "$conf"
  fi
}

case_h1_keepalive_floor_args() { echo "--to 127.0.0.1:$CASE_H1_BACKEND_PORT"; }
case_h1_keepalive_floor_uring_args() { echo "--mode uring --to 127.0.0.1:$CASE_H1_BACKEND_PORT"; }

case_h1_keepalive_probe() {
  bench_wait_http "http://127.0.0.1:$1/" 10 "$2" || return 1
  local body
  body="$(curl -s --max-time 2 "http://127.0.0.1:$1/")"
  [[ "$body" == "$CASE_H1_BODY" ]] && return 0
  bench_log "proxy on port $1 answered 200 but not the backend's body: ${body:0:120}"
  return 1
}

case_h1_keepalive_load() {
  local port="$1" seconds="$2" raw="$3"
  # wrk bounds each request (2 s timeout); `timeout` bounds the whole run.
  timeout $((seconds + 30)) taskset -c "$BENCH_LOAD_CPU" \
    wrk -t "$BENCH_THREADS" -c "$BENCH_CONNECTIONS" -d "${seconds}s" --latency \
    -s "$BENCH_LIB_DIR/wrk_report.lua" "http://127.0.0.1:$port/" >"$raw" 2>&1 || return 1
  bench_wrk_result "$raw"
}

case_h1_keepalive_teardown() {
  [[ -n "$CASE_H1_BACKEND_PID" ]] && bench_stop_tree "$CASE_H1_BACKEND_PID"
  CASE_H1_BACKEND_PID=""
}
