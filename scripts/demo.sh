#!/usr/bin/env bash
# `make demo`: the sample app behind outrigger, a few requests through it, then it keeps running
# (metrics at the admin URL) until Ctrl-C. DEMO_ONESHOT=1 stops right after the requests.
set -euo pipefail
BIN=${1:-build/release/proxy/outrigger}
cd "$(dirname "$0")/.."
WORK=$(mktemp -d /tmp/outrigger-demo.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo; echo "stopping"; exit 0' INT TERM

python3 examples/app/app.py --listen 127.0.0.1:18080 --name orders & PIDS+=($!)
"$BIN" validate --config examples/demo/outrigger.yaml
"$BIN" run --config examples/demo/outrigger.yaml >"$WORK/access.log" 2>"$WORK/outrigger.log" & PIDS+=($!)

for _ in $(seq 1 100); do
  curl -fs http://127.0.0.1:19901/ready >/dev/null 2>&1 && curl -fs http://127.0.0.1:18080/health >/dev/null 2>&1 && break
  sleep 0.05
done
curl -fs http://127.0.0.1:19901/ready >/dev/null || { echo "outrigger did not become ready:"; cat "$WORK/outrigger.log"; exit 1; }

show() { echo; echo "\$ $*"; "$@"; echo; }
echo "== outrigger $("$BIN" --version | cut -d' ' -f2) is proxying http://orders/ -> the sample app on 127.0.0.1:18080"
show curl -s -H 'Host: orders' http://127.0.0.1:15001/health
show curl -s -H 'Host: orders' -H 'content-type: application/json' -d '{"item":"paddle","qty":2}' http://127.0.0.1:15001/orders
show curl -s -x http://127.0.0.1:15001 http://orders/orders
show curl -s -i -H 'Host: unknown-service' http://127.0.0.1:15001/
sleep 0.2
echo "== access log (one JSON line per request):"
cat "$WORK/access.log"
echo
echo "== metrics:  http://127.0.0.1:19901/metrics   (also /ready /healthz /config /clusters)"
curl -s http://127.0.0.1:19901/metrics | grep -E '^outrigger_downstream_requests_total\{.*2xx' || true
if [ "${DEMO_ONESHOT:-0}" = 1 ]; then exit 0; fi
echo
echo "Running. Try: curl -H 'Host: orders' http://127.0.0.1:15001/orders   -- Ctrl-C to stop."
wait "${PIDS[1]}"
