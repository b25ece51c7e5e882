# Cases "tls-handshake", "tls-conn-new" and "tls-conn-resumed": the cost of new TLS 1.3
# connections to a proxy terminating TLS (EC P-256 certificate from `outrigger pki`, key exchange
# X25519, TLS_AES_128_GCM_SHA256, no client certificate). The load generator is `openssl s_time`
# (BENCH_TLS_CLIENTS processes in parallel, default 4, on the load CPU), one connection after the
# other in each process:
#   tls-handshake     full handshake, then close; no request (s_time -new)
#   tls-conn-new      full handshake + one HTTP/1.0 request forwarded to the backend, then close
#                     (s_time -new -www /)
#   tls-conn-resumed  the same with a resumed handshake: the session ticket of the first connection
#                     is offered on every later one (s_time -reuse -www /). TLS 1.3 tickets arrive
#                     after the handshake, so a client can only resume after reading, hence the
#                     request. Connections that were not resumed are counted as errors.
# "req/s" is connections per second, "CPU-µs/req" the proxy's CPU per connection; no latency (s_time
# does not measure it). s_time sends "GET <www> HTTP/1.0" with no Host header; the -www value
# below smuggles one in ("/ HTTP/1.0<CRLF>Host: ...<CRLF>X-Bench: s_time"), because proxies differ
# in what they forward for a Host-less HTTP/1.0 request and the backend refuses an empty Host.
# BENCH_TLS_CLIENT=python runs the tls-conn-* cases with lib/tls_conns.py instead (same request,
# measures latency, and keeps sessions when a server closes without close_notify).
# Backend: the plain nginx of h1-keepalive (bench/peers/backend-nginx.conf).
# Hooks: see case_h1_keepalive.sh.

BENCH_CASES_KNOWN+=(tls-handshake tls-conn-new tls-conn-resumed)

BENCH_TLS_CLIENTS="${BENCH_TLS_CLIENTS:-4}"
BENCH_TLS_CLIENT="${BENCH_TLS_CLIENT:-s_time}"
CASE_TLS_WWW=$'/ HTTP/1.0\r\nHost: proxy.bench.internal\r\nX-Bench: s_time'

CASE_TLS_BACKEND_PID=""
CASE_TLS_BACKEND_PORT=""
CASE_TLS_BODY=""

case_tls_describe_common() {
  local client="'openssl s_time'"
  [[ "$BENCH_TLS_CLIENT" == python ]] && client="lib/tls_conns.py (s_time for tls-handshake)"
  echo "TLS 1.3 termination (EC P-256 certificate, X25519, AES-128-GCM, no client certificate); ${BENCH_TLS_CLIENTS} parallel $client clients; req/s = connections/s, CPU-µs/req = proxy CPU per connection"
}
case_tls_handshake_describe() {
  echo "new connection + full handshake, closed at once, no request; $(case_tls_describe_common)"
}
case_tls_conn_new_describe() {
  echo "new connection + full handshake + one HTTP/1.0 request to the backend; $(case_tls_describe_common)"
}
case_tls_conn_resumed_describe() {
  echo "new connection + resumed handshake (session ticket) + one HTTP/1.0 request to the backend; errors = connections not resumed; $(case_tls_describe_common)"
}

case_tls_setup() {
  bench_require openssl nginx curl
  [[ "$BENCH_TLS_CLIENTS" =~ ^[0-9]+$ ]] && ((BENCH_TLS_CLIENTS >= 1 && BENCH_TLS_CLIENTS <= 64)) ||
    { bench_log "BENCH_TLS_CLIENTS must be 1..64"; return 1; }
  [[ "$BENCH_TLS_CLIENT" == s_time || "$BENCH_TLS_CLIENT" == python ]] ||
    { bench_log "BENCH_TLS_CLIENT must be s_time or python"; return 1; }
  bench_make_pki "$BENCH_TMP/pki" || return 1
  CASE_TLS_BACKEND_PORT="$(bench_free_ports 1)"
  local conf="$BENCH_TMP/backend-nginx.conf"
  bench_render "$BENCH_PEERS_DIR/backend-nginx.conf" "$conf" \
    TMP="$BENCH_TMP" BACKEND_PORT="$CASE_TLS_BACKEND_PORT"
  bench_start_nginx CASE_TLS_BACKEND_PID "$BENCH_LOAD_CPU" "$conf" backend-nginx
  if ! bench_wait_http "http://127.0.0.1:$CASE_TLS_BACKEND_PORT/" 10 "$CASE_TLS_BACKEND_PID"; then
    bench_tail_log "$BENCH_TMP/backend-nginx-error.log"
    return 1
  fi
  bench_track_tree "$CASE_TLS_BACKEND_PID"
  CASE_TLS_BODY="$(curl -s --max-time 2 "http://127.0.0.1:$CASE_TLS_BACKEND_PORT/")"
}

case_tls_start_proxy() {
  bench_start_templated "$1" tls "$2" PKI="$BENCH_TMP/pki" BACKEND_PORT="$CASE_TLS_BACKEND_PORT"
}

# A request over TLS, with the chain and the name (proxy.bench.internal) verified.
case_tls_probe() {
  local port="$1" pid="$2" body
  local tls=(--resolve "proxy.bench.internal:$port:127.0.0.1" --cacert "$BENCH_TMP/pki/bundle.pem")
  bench_wait_http "https://proxy.bench.internal:$port/" 10 "$pid" "${tls[@]}" || return 1
  body="$(curl -s --max-time 2 "${tls[@]}" "https://proxy.bench.internal:$port/")"
  if [[ "$body" != "$CASE_TLS_BODY" ]]; then
    bench_log "proxy on port $1 answered 200 but not the backend's body: ${body:0:120}"
    return 1
  fi
  # The exact request the load generators send must be answered with 200 too.
  local answer
  answer="$(printf 'GET %s HTTP/1.0\r\n\r\n' "$CASE_TLS_WWW" |
    timeout 5 openssl s_client -quiet -connect "127.0.0.1:$port" -tls1_3 2>/dev/null | head -c 200)"
  [[ "$answer" == "HTTP/1."?" 200"* ]] && return 0
  bench_log "proxy on port $1 does not answer the s_time request with 200: ${answer:0:120}"
  return 1
}

# case_tls_load MODE PORT SECONDS RAW : MODE is new, new-req or resume-req. Runs the s_time
# processes, keeps their output in RAW, prints the result line (see case_h1_keepalive.sh).
case_tls_load() {
  local mode="$1" port="$2" seconds="$3" raw="$4" i t0 t1 rc=0
  local args=(s_time -connect "127.0.0.1:$port" -tls1_3 -ciphersuites TLS_AES_128_GCM_SHA256
    -time "$seconds")
  case "$mode" in
    new) args+=(-new) ;;
    new-req) args+=(-new -www "$CASE_TLS_WWW") ;;
    resume-req) args+=(-reuse -www "$CASE_TLS_WWW") ;;
  esac
  if [[ "$BENCH_TLS_CLIENT" == python && "$mode" != new ]]; then
    local py=(python3 "$BENCH_LIB_DIR/tls_conns.py" --port "$port" --cafile "$BENCH_TMP/pki/bundle.pem"
      --seconds "$seconds" --procs "$BENCH_TLS_CLIENTS")
    [[ "$mode" == resume-req ]] && py+=(--resume)
    timeout $((seconds + 60)) taskset -c "$BENCH_LOAD_CPU" "${py[@]}" >"$raw" 2>&1 </dev/null ||
      return 1
    grep '^requests=' "$raw" | tail -1
    return 0
  fi
  local pids=() outs=()
  t0="$(date +%s%N)"
  for ((i = 1; i <= BENCH_TLS_CLIENTS; i++)); do
    outs+=("$raw.client$i")
    timeout $((seconds + 30)) taskset -c "$BENCH_LOAD_CPU" openssl "${args[@]}" \
      >"$raw.client$i" 2>&1 </dev/null &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || rc=1; done
  t1="$(date +%s%N)"
  {
    echo "command: openssl ${args[*]@Q}  (x${BENCH_TLS_CLIENTS} in parallel)"
    for i in "${outs[@]}"; do echo "== $i"; cat "$i"; done
  } >"$raw"
  rm -f "${outs[@]}"
  ((rc == 0)) || return 1
  # Per process: the marks line ('r' = resumed, '*' = full handshake) and
  # "N connections in S real seconds, B bytes read per connection".
  python3 - "$raw" "$mode" "$((t1 - t0))" <<'EOF'
import re, sys
raw, mode, wall_ns = sys.argv[1], sys.argv[2], int(sys.argv[3])
text = open(raw).read()
totals = re.findall(r"^(\d+) connections in \d+ real seconds, (\d+) bytes read per connection", text, re.M)
if not totals:
    sys.exit("no s_time summary in " + raw)
conns = sum(int(n) for n, _ in totals)
if conns == 0 or (mode != "new" and any(int(b) == 0 for _, b in totals)):
    sys.exit("no connection completed, or no response bytes read")
marks = "".join(l for l in text.splitlines() if l and set(l) <= set("r*t23"))
not_resumed = sum(1 for c in marks if c != "r") if mode == "resume-req" else 0
print(f"requests={conns} duration_us={wall_ns // 1000} p50_us= p99_us= errors={not_resumed}")
EOF
}

case_tls_teardown() {
  [[ -n "$CASE_TLS_BACKEND_PID" ]] && bench_stop_tree "$CASE_TLS_BACKEND_PID"
  CASE_TLS_BACKEND_PID=""
}

# The three cases share everything but the load mode.
for _c in tls_handshake:new tls_conn_new:new-req tls_conn_resumed:resume-req; do
  eval "case_${_c%%:*}_setup() { case_tls_setup; }
case_${_c%%:*}_start_proxy() { case_tls_start_proxy \"\$@\"; }
case_${_c%%:*}_probe() { case_tls_probe \"\$@\"; }
case_${_c%%:*}_load() { case_tls_load ${_c#*:} \"\$@\"; }
case_${_c%%:*}_teardown() { case_tls_teardown; }"
done
unset _c
