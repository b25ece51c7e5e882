# Starting the proxies under test (and the nginx backend) the same way in every case: pinned to a
# CPU, in the foreground (no daemonizing, so the PID we hold is the master), logs in BENCH_TMP.
# Sourced after common.sh; single-threaded.

# shellcheck disable=SC2034 # used by the scripts that source this file
BENCH_PEERS=(haproxy nginx nghttpx)
BENCH_ALL_PROXIES=(outrigger "${BENCH_PEERS[@]}")
# Run only when named: "floor", the least work any proxy can do in a case (bench/floor/floor.cc,
# built as bench_floor next to outrigger; BENCH_FLOOR_BIN), and "floor-uring", the same on
# io_uring. A case that has one defines case_<id>_floor_args (case_<id>_floor_uring_args), the
# arguments after --listen; the other cases skip it.
BENCH_OPTIONAL_PROXIES=(floor floor-uring)

# bench_start_nginx VAR CPU CONF NAME : nginx with its prefix inside BENCH_TMP; -e keeps the
# start-up error log out of /var/log.
bench_start_nginx() {
  bench_spawn "$1" "$2" "$BENCH_TMP/$4.log" \
    nginx -p "$BENCH_TMP/" -c "$3" -e "$BENCH_TMP/$4-startup-error.log"
}

# bench_start_peer VAR PROXY CONF : one of BENCH_PEERS, on the proxy CPU.
bench_start_peer() {
  local var="$1" proxy="$2" conf="$3"
  case "$proxy" in
    nginx) bench_start_nginx "$var" "$BENCH_PROXY_CPU" "$conf" nginx ;;
    # -db: stay in the foreground, one process (no master-worker).
    haproxy) bench_spawn "$var" "$BENCH_PROXY_CPU" "$BENCH_TMP/haproxy.log" haproxy -db -f "$conf" ;;
    # No -D: stays in the foreground; the worker process is a child of the PID we hold.
    nghttpx) bench_spawn "$var" "$BENCH_PROXY_CPU" "$BENCH_TMP/nghttpx.log" nghttpx --conf="$conf" ;;
    *) bench_die "unknown peer '$proxy'" ;;
  esac
}

# bench_floor_hook ID PROXY : the name of case ID's hook for floor or floor-uring.
bench_floor_hook() { echo "case_${1}_${2//-/_}_args"; }

# bench_start_floor ID PROXY PORT : floor or floor-uring of case ID on the proxy CPU; its PID in
# PROXY_PID.
bench_start_floor() {
  local args
  read -r -a args <<<"$("$(bench_floor_hook "$1" "$2")")"
  bench_spawn PROXY_PID "$BENCH_PROXY_CPU" "$BENCH_TMP/$2.log" \
    "$BENCH_FLOOR_BIN" --listen "127.0.0.1:$3" "${args[@]}"
}

# bench_outrigger_bin PROXY : the binary of an outrigger variant (outrigger-base is the --baseline
# binary of an A/B run; every other variant is OUTRIGGER_BIN).
bench_outrigger_bin() {
  if [[ "$1" == outrigger-base ]]; then echo "$BENCH_BASELINE_BIN"; else echo "$OUTRIGGER_BIN"; fi
}

# bench_start_templated PROXY SUFFIX PORT KEY=VALUE... : renders peers/<proxy>-<suffix>.<ext>
# (outrigger .yaml, haproxy .cfg, nginx and nghttpx .conf) into BENCH_TMP with TMP, LISTEN_PORT and
# the given keys, and starts it on the proxy CPU; its PID in PROXY_PID.
bench_start_templated() {
  local proxy="$1" suffix="$2" port="$3" template conf
  shift 3
  case "$proxy" in
    outrigger | outrigger-base) template="outrigger-$suffix.yaml" ;;
    haproxy) template="haproxy-$suffix.cfg" ;;
    nginx | nghttpx) template="$proxy-$suffix.conf" ;;
    *) bench_die "no '$suffix' configuration for proxy '$proxy'" ;;
  esac
  conf="$BENCH_TMP/$template"
  bench_render "$BENCH_PEERS_DIR/$template" "$conf" TMP="$BENCH_TMP" LISTEN_PORT="$port" "$@"
  if [[ "$proxy" == outrigger* ]]; then
    bench_spawn PROXY_PID "$BENCH_PROXY_CPU" "$BENCH_TMP/$proxy.log" \
      "$(bench_outrigger_bin "$proxy")" run --config "$conf"
  else
    bench_start_peer PROXY_PID "$proxy" "$conf"
  fi
}

# Prints "name version" per line for the report.
bench_versions() {
  local bin="${1:-}"
  echo "haproxy $(haproxy -v 2>&1 | awk 'NR==1 {print $3}')"
  echo "nginx $(nginx -v 2>&1 | sed 's|.*nginx/||')"
  echo "nghttpx $(nghttpx --version 2>&1 | sed 's|.*nghttp2/||')"
  echo "wrk $(wrk -v 2>&1 | awk 'NR==1 {print $2}')"
  if command -v h2load >/dev/null 2>&1; then
    echo "h2load $(h2load --version 2>&1 | sed 's|.*nghttp2/||')"
  fi
  if [[ -n "$bin" && -x "$bin" ]]; then
    echo "outrigger $(timeout 5 "$bin" --version 2>/dev/null | head -1 | sed 's/^outrigger //' || true)"
  fi
}
