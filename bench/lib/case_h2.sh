# Cases "h2c-h1" and "h2-h2": HTTP/2 downstream in cleartext with prior knowledge (h2c), load from
# h2load (nghttp2): BENCH_CONNECTIONS connections (default 32) x BENCH_H2_STREAMS concurrent
# streams each (default 8), BENCH_THREADS threads, for the run's duration.
#   h2c-h1  h2c downstream -> HTTP/1.1 keep-alive upstream to the nginx backend of h1-keepalive
#           (bench/peers/backend-nginx.conf, 64-byte body); every proxy may open as many upstream
#           connections as there are streams in flight.
#   h2-h2   h2c downstream -> h2c upstream to nghttpd (nghttp2's server, --no-tls, one thread,
#           serving the same 64-byte body from a file; about 8 CPU-µs per request against nginx's
#           20 with HTTP/2, so the shared load CPU stays less of a limit). nghttpd speaks only
#           HTTP/2, so a 200 through a proxy proves its upstream is HTTP/2. nginx 1.22 has no
#           HTTP/2 proxy_pass; it is run with grpc_pass, which forwards plain GETs over HTTP/2 but
#           opens one upstream connection per stream in flight (no multiplexing).
# Latency percentiles come from h2load's --log-file (lib/h2load_report.py): time from a stream's
# request to the end of its response. Hooks: see case_h1_keepalive.sh.

BENCH_CASES_KNOWN+=(h2c-h1 h2-h2)

BENCH_H2_STREAMS="${BENCH_H2_STREAMS:-8}"
CASE_H2_BACKEND_PID=""
CASE_H2_BACKEND_PORT=""
# Byte for byte what peers/backend-nginx.conf answers (63 characters + "\n"); $(...) drops the "\n".
CASE_H2_BODY="outrigger-bench backend: fixed 64-byte body...................."

case_h2_describe_load() {
  echo "h2load (${BENCH_CONNECTIONS} connections x ${BENCH_H2_STREAMS} concurrent streams, ${BENCH_THREADS} thread(s)), h2c with prior knowledge"
}
case_h2c_h1_describe() {
  echo "HTTP/2 cleartext (h2c) downstream, HTTP/1.1 keep-alive upstream; $(case_h2_describe_load) -> proxy -> nginx 'return 200' with a 64-byte body"
}
case_h2_h2_describe() {
  echo "h2c downstream, h2c upstream (multiplexed; nginx: grpc_pass, one stream per upstream connection); $(case_h2_describe_load) -> proxy -> nghttpd with a 64-byte file"
}

case_h2_check_settings() {
  bench_require h2load curl
  [[ "$BENCH_H2_STREAMS" =~ ^[0-9]+$ ]] && ((BENCH_H2_STREAMS >= 1 && BENCH_H2_STREAMS <= 1000)) ||
    { bench_log "BENCH_H2_STREAMS must be 1..1000"; return 1; }
}

# case_h2_start TEMPLATE_SUFFIX PROXY PORT BACKEND_PORT : peers/<proxy>-<suffix>.<ext>.
case_h2_start() { bench_start_templated "$2" "$1" "$3" BACKEND_PORT="$4"; }

# case_h2_probe PORT PID : 200 over HTTP/2 with prior knowledge, carrying the backend's body.
case_h2_probe() {
  local port="$1" pid="$2" url="http://127.0.0.1:$1/" version body
  bench_wait_http "$url" 10 "$pid" --http2-prior-knowledge || return 1
  version="$(curl -s --http2-prior-knowledge --max-time 2 -o "$BENCH_TMP/h2-probe-body" \
    -w '%{http_version}' "$url")" || true
  body="$(cat "$BENCH_TMP/h2-probe-body" 2>/dev/null)"
  if [[ "$version" != 2 ]]; then
    bench_log "proxy on port $port did not answer over HTTP/2 (curl: HTTP version '$version')"
    return 1
  fi
  [[ "$body" == "$CASE_H2_BODY" ]] && return 0
  bench_log "proxy on port $port answered 200 but not the backend's body: ${body:0:120}"
  return 1
}

# case_h2_load PORT SECONDS RAW : one h2load run; stdout (plus a BENCH_RESULT line) kept in RAW.
case_h2_load() {
  local port="$1" seconds="$2" raw="$3" log="$BENCH_TMP/h2load-requests.tsv"
  rm -f "$log"
  # No h2load timeouts: a stuck stream would only lower the count; `timeout` bounds the run.
  timeout $((seconds + 30)) taskset -c "$BENCH_LOAD_CPU" \
    h2load -t "$BENCH_THREADS" -c "$BENCH_CONNECTIONS" -m "$BENCH_H2_STREAMS" -D "$seconds" \
    --log-file="$log" "http://127.0.0.1:$port/" >"$raw" 2>&1 || return 1
  python3 "$BENCH_LIB_DIR/h2load_report.py" "$raw" "$log" || return 1
  rm -f "$log"
}

# --- h2c-h1: the nginx backend of h1-keepalive ---------------------------------------------------
case_h2c_h1_setup() {
  case_h2_check_settings || return 1
  case_h1_keepalive_setup || return 1
  [[ "$CASE_H1_BODY" == "$CASE_H2_BODY" ]] ||
    { bench_log "the nginx backend's body is not the expected 64 bytes"; return 1; }
}
case_h2c_h1_start_proxy() { case_h2_start h2c "$1" "$2" "$CASE_H1_BACKEND_PORT"; }
case_h2c_h1_floor_args() { echo "--mode h2c --to 127.0.0.1:$CASE_H1_BACKEND_PORT"; }
case_h2c_h1_probe() { case_h2_probe "$@"; }
case_h2c_h1_load() { case_h2_load "$@"; }
case_h2c_h1_teardown() { case_h1_keepalive_teardown; }

# --- h2-h2: nghttpd ---------------------------------------------------------------------------
case_h2_h2_setup() {
  case_h2_check_settings || return 1
  bench_require nghttpd
  local docs="$BENCH_TMP/nghttpd-htdocs"
  mkdir -p "$docs"
  printf '%s\n' "$CASE_H2_BODY" >"$docs/index.html" # "/" is served as /index.html
  CASE_H2_BACKEND_PORT="$(bench_free_ports 1)"
  # -m: enough concurrent streams that one connection can carry everything every proxy sends.
  bench_spawn CASE_H2_BACKEND_PID "$BENCH_LOAD_CPU" "$BENCH_TMP/nghttpd.log" \
    nghttpd --no-tls --address=127.0.0.1 --max-concurrent-streams=1024 --workers=1 \
    --htdocs="$docs" "$CASE_H2_BACKEND_PORT"
  if ! bench_wait_http "http://127.0.0.1:$CASE_H2_BACKEND_PORT/" 10 "$CASE_H2_BACKEND_PID" \
    --http2-prior-knowledge; then
    bench_tail_log "$BENCH_TMP/nghttpd.log"
    return 1
  fi
  local body
  body="$(curl -s --http2-prior-knowledge --max-time 2 "http://127.0.0.1:$CASE_H2_BACKEND_PORT/")"
  [[ "$body" == "$CASE_H2_BODY" ]] ||
    { bench_log "nghttpd did not serve the 64-byte body: ${body:0:120}"; return 1; }
}
case_h2_h2_start_proxy() { case_h2_start h2 "$1" "$2" "$CASE_H2_BACKEND_PORT"; }
case_h2_h2_probe() { case_h2_probe "$@"; }
case_h2_h2_load() { case_h2_load "$@"; }
case_h2_h2_teardown() {
  [[ -n "$CASE_H2_BACKEND_PID" ]] && bench_stop_tree "$CASE_H2_BACKEND_PID"
  CASE_H2_BACKEND_PID=""
}
