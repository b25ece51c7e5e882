# Case "h1-mtls-upstream": wrk -> proxy over plaintext HTTP/1.1 keep-alive; proxy -> backend over
# mutual TLS (TLS 1.3, AES-128-GCM): the proxy sends SNI backend.bench.internal, verifies the
# backend's chain against the dev PKI bundle and its name (DNS SAN), presents a client certificate,
# keeps upstream connections alive and reuses TLS sessions where it can.
# Backend: one nginx worker terminating TLS and requiring a client certificate
# (bench/peers/backend-nginx-mtls.conf), same 64-byte body as h1-keepalive.
# Certificates: bench_make_pki (outrigger pki, EC P-256). Hooks: see case_h1_keepalive.sh.

BENCH_CASES_KNOWN+=(h1-mtls-upstream)

CASE_MTLS_BACKEND_PID=""
CASE_MTLS_BACKEND_PORT=""
CASE_MTLS_BODY=""

case_h1_mtls_upstream_describe() {
  echo "plaintext HTTP/1.1 keep-alive downstream, mutual TLS 1.3 upstream (client certificate, chain + name verified, SNI, pooled connections, session reuse); wrk (${BENCH_CONNECTIONS} connections, ${BENCH_THREADS} thread(s)) -> proxy -> nginx (TLS, ssl_verify_client on) 'return 200' with a 64-byte body"
}

case_h1_mtls_upstream_setup() {
  bench_require wrk nginx curl
  bench_make_pki "$BENCH_TMP/pki" || return 1
  CASE_MTLS_BACKEND_PORT="$(bench_free_ports 1)"
  local conf="$BENCH_TMP/backend-nginx-mtls.conf" pki="$BENCH_TMP/pki"
  bench_render "$BENCH_PEERS_DIR/backend-nginx-mtls.conf" "$conf" \
    TMP="$BENCH_TMP" PKI="$pki" BACKEND_PORT="$CASE_MTLS_BACKEND_PORT"
  bench_start_nginx CASE_MTLS_BACKEND_PID "$BENCH_LOAD_CPU" "$conf" backend-nginx-mtls
  local url="https://backend.bench.internal:$CASE_MTLS_BACKEND_PORT/"
  local tls=(--resolve "backend.bench.internal:$CASE_MTLS_BACKEND_PORT:127.0.0.1"
    --cacert "$pki/bundle.pem" --cert "$pki/proxy.pem" --key "$pki/proxy.key")
  if ! bench_wait_http "$url" 10 "$CASE_MTLS_BACKEND_PID" "${tls[@]}"; then
    bench_tail_log "$BENCH_TMP/backend-nginx-mtls-error.log"
    bench_tail_log "$BENCH_TMP/backend-nginx-mtls.log"
    return 1
  fi
  bench_track_tree "$CASE_MTLS_BACKEND_PID"
  CASE_MTLS_BODY="$(curl -s --max-time 2 "${tls[@]}" "$url")"
  # The backend must refuse a client without a certificate (else the case measures plain TLS).
  local code
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
    --resolve "backend.bench.internal:$CASE_MTLS_BACKEND_PORT:127.0.0.1" \
    --cacert "$pki/bundle.pem" "$url" 2>/dev/null)" || true
  if [[ "$code" == 200 ]]; then
    bench_log "the mTLS backend answered 200 without a client certificate"
    return 1
  fi
}

case_h1_mtls_upstream_start_proxy() {
  bench_start_templated "$1" mtls "$2" PKI="$BENCH_TMP/pki" BACKEND_PORT="$CASE_MTLS_BACKEND_PORT"
}

case_h1_mtls_upstream_floor_args() {
  local pki="$BENCH_TMP/pki"
  echo "--to 127.0.0.1:$CASE_MTLS_BACKEND_PORT --ca $pki/bundle.pem --cert $pki/proxy.pem --key $pki/proxy.key --sni backend.bench.internal"
}

case_h1_mtls_upstream_probe() {
  bench_wait_http "http://127.0.0.1:$1/" 10 "$2" || return 1
  local body
  body="$(curl -s --max-time 2 "http://127.0.0.1:$1/")"
  [[ "$body" == "$CASE_MTLS_BODY" ]] && return 0
  bench_log "proxy on port $1 answered 200 but not the backend's body: ${body:0:120}"
  return 1
}

case_h1_mtls_upstream_load() {
  local port="$1" seconds="$2" raw="$3"
  timeout $((seconds + 30)) taskset -c "$BENCH_LOAD_CPU" \
    wrk -t "$BENCH_THREADS" -c "$BENCH_CONNECTIONS" -d "${seconds}s" --latency \
    -s "$BENCH_LIB_DIR/wrk_report.lua" "http://127.0.0.1:$port/" >"$raw" 2>&1 || return 1
  bench_wrk_result "$raw"
}

case_h1_mtls_upstream_teardown() {
  [[ -n "$CASE_MTLS_BACKEND_PID" ]] && bench_stop_tree "$CASE_MTLS_BACKEND_PID"
  CASE_MTLS_BACKEND_PID=""
}
