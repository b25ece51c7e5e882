#!/usr/bin/env bash
# Memory and start-up footprint of outrigger (and, for comparison, the peers): idle RSS with one
# worker, RSS while holding N idle keep-alive client connections (goal: <= 48 MiB at 10,000), and
# the time from process start to admin /ready answering 200. See bench/README.md.
set -euo pipefail

usage() {
  cat <<EOF
usage: bench/footprint.sh [options] OUTRIGGER_BINARY

  -p, --proxies LIST      comma-separated subset of: ${BENCH_ALL_PROXIES[*]}
                          (FOOTPRINT_PROXIES, default outrigger); peers get the RSS
                          measurements only (they have no admin /ready)
  -n, --connections N     idle keep-alive connections to hold (FOOTPRINT_CONNECTIONS, default 10000)
      --startup-runs N    start-up measurements, median reported (FOOTPRINT_STARTUP_RUNS, default 5)
      --goal-mib N        RSS goal with N connections, outrigger only (FOOTPRINT_GOAL_MIB, default 48)
  -o, --out DIR           output folder (BENCH_OUT, default bench/out)
      --keep-tmp          keep the temp folder (configs, logs) for debugging
  -h, --help

Outputs: a table on stdout and in OUT/footprint.md, OUT/footprint.csv.
Exit status: 0 when every measurement succeeded and outrigger met the RSS goal, 1 otherwise.
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

FOOTPRINT_PROXIES="${FOOTPRINT_PROXIES:-outrigger}"
FOOTPRINT_CONNECTIONS="${FOOTPRINT_CONNECTIONS:-10000}"
FOOTPRINT_STARTUP_RUNS="${FOOTPRINT_STARTUP_RUNS:-5}"
FOOTPRINT_GOAL_MIB="${FOOTPRINT_GOAL_MIB:-48}"
BENCH_OUT="${BENCH_OUT:-$HERE/out}"
BENCH_PROXY_CPU="${BENCH_PROXY_CPU:-1}"
BENCH_LOAD_CPU="${BENCH_LOAD_CPU:-0}"
BENCH_CONNECTIONS=1 BENCH_THREADS=1 # only used by the case's description
OUTRIGGER_BIN="${OUTRIGGER_BIN:-}"

while (($#)); do
  case "$1" in
    -p | --proxies) FOOTPRINT_PROXIES="$2"; shift 2 ;;
    -n | --connections) FOOTPRINT_CONNECTIONS="$2"; shift 2 ;;
    --startup-runs) FOOTPRINT_STARTUP_RUNS="$2"; shift 2 ;;
    --goal-mib) FOOTPRINT_GOAL_MIB="$2"; shift 2 ;;
    -o | --out) BENCH_OUT="$2"; shift 2 ;;
    --keep-tmp) BENCH_KEEP_TMP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
    *) OUTRIGGER_BIN="$1"; shift ;;
  esac
done

for v in FOOTPRINT_CONNECTIONS FOOTPRINT_STARTUP_RUNS FOOTPRINT_GOAL_MIB; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || bench_die "$v must be a whole number (got '${!v}')"
done
((FOOTPRINT_CONNECTIONS >= 1 && FOOTPRINT_CONNECTIONS <= 15000)) ||
  bench_die "connections must be 1..15000 (client and proxy each need one fd per connection)"
((FOOTPRINT_STARTUP_RUNS >= 1 && FOOTPRINT_STARTUP_RUNS <= 100)) || bench_die "startup runs: 1..100"
IFS=, read -r -a PROXIES <<<"$FOOTPRINT_PROXIES"
for p in "${PROXIES[@]}"; do
  [[ " ${BENCH_ALL_PROXIES[*]} " == *" $p "* ]] || bench_die "unknown proxy '$p'"
  [[ "$p" == outrigger ]] || bench_require "$p"
done
if [[ " ${PROXIES[*]} " == *" outrigger "* ]]; then
  [[ -n "$OUTRIGGER_BIN" && -x "$OUTRIGGER_BIN" ]] ||
    bench_die "outrigger selected but '$OUTRIGGER_BIN' is not an executable (see --help)"
  OUTRIGGER_BIN="$(cd "$(dirname "$OUTRIGGER_BIN")" && pwd)/$(basename "$OUTRIGGER_BIN")"
fi
bench_require taskset curl python3 nginx

bench_make_tmp
bench_install_traps
# Inherited by the proxies, the backend and the client: each holds ~N descriptors.
bench_raise_nofile
(($(ulimit -n) >= FOOTPRINT_CONNECTIONS + 200)) ||
  bench_die "open-files limit $(ulimit -n) is too low for $FOOTPRINT_CONNECTIONS connections"
mkdir -p "$BENCH_OUT"
RESULTS="$BENCH_TMP/footprint.jsonl"
: >"$RESULTS"

case_h1_keepalive_setup || bench_die "backend setup failed"
BACKEND_PORT="$CASE_H1_BACKEND_PORT"

# measure PROXY : start it, idle RSS once it is ready, then RSS while holding the connections.
measure() {
  local proxy="$1" port admin pids startup='null' idle hold
  if [[ "$proxy" == outrigger ]]; then
    bench_log "outrigger: start-up time to admin /ready ($FOOTPRINT_STARTUP_RUNS runs)"
    startup="$(python3 "$HERE/lib/startup_time.py" --runs "$FOOTPRINT_STARTUP_RUNS" \
      --cpu "$BENCH_PROXY_CPU" --log "$BENCH_TMP/outrigger-startup.log" -- \
      "$OUTRIGGER_BIN" reverse-proxy --listen '127.0.0.1:{listen}' \
      --to "http://127.0.0.1:$BACKEND_PORT" --workers 1 --access-log off \
      --admin '127.0.0.1:{admin}')" || {
      bench_log "outrigger: start-up measurement failed: $startup"
      bench_tail_log "$BENCH_TMP/outrigger-startup.log"
    }
    [[ "$startup" == '{'* ]] || startup='null'
    read -r port admin <<<"$(bench_free_ports 2)"
    bench_spawn PROXY_PID "$BENCH_PROXY_CPU" "$BENCH_TMP/outrigger.log" \
      "$OUTRIGGER_BIN" reverse-proxy --listen "127.0.0.1:$port" \
      --to "http://127.0.0.1:$BACKEND_PORT" --workers 1 --access-log off \
      --admin "127.0.0.1:$admin"
    bench_wait_http "http://127.0.0.1:$admin/ready" 10 "$PROXY_PID" || {
      bench_tail_log "$BENCH_TMP/outrigger.log"
      bench_stop_tree "$PROXY_PID"
      echo "{\"proxy\":\"$proxy\",\"startup\":$startup,\"error\":\"not ready\"}" >>"$RESULTS"
      return 1
    }
  else
    port="$(bench_free_ports 1)"
    PROXY_PID=""
    case_h1_keepalive_start_proxy "$proxy" "$port"
    case_h1_keepalive_probe "$port" "$PROXY_PID" || {
      bench_tail_log "$BENCH_TMP/$proxy.log"
      bench_stop_tree "$PROXY_PID"
      echo "{\"proxy\":\"$proxy\",\"error\":\"not ready\"}" >>"$RESULTS"
      return 1
    }
  fi
  bench_track_tree "$PROXY_PID"
  mapfile -t pids < <(bench_tree "$PROXY_PID")
  idle="$(bench_rss_kib "${pids[@]}")"
  bench_log "$proxy: idle RSS $((idle / 1024)) MiB in ${#pids[@]} process(es); opening $FOOTPRINT_CONNECTIONS connections"
  hold="$(timeout 300 taskset -c "$BENCH_LOAD_CPU" python3 "$HERE/lib/hold_conns.py" \
    --port "$port" --pids "$(IFS=,; echo "${pids[*]}")" --count "$FOOTPRINT_CONNECTIONS")" || {
    bench_log "$proxy: holding connections failed: ${hold:-no output}"
    hold='{"error":"client failed"}'
  }
  bench_stop_tree "$PROXY_PID"
  echo "{\"proxy\":\"$proxy\",\"startup\":$startup,\"idle_rss_kib\":$idle,\"processes\":${#pids[@]},\"hold\":$hold}" >>"$RESULTS"
}

failed=0
for proxy in "${PROXIES[@]}"; do
  measure "$proxy" || failed=1
done
case_h1_keepalive_teardown

python3 - "$RESULTS" "$BENCH_OUT" "$FOOTPRINT_CONNECTIONS" "$FOOTPRINT_GOAL_MIB" \
  "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(bench_versions "$OUTRIGGER_BIN" | paste -sd ';' | sed 's/;/, /g')" \
  "$(nproc --all) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load average $(cut -d' ' -f1-3 /proc/loadavg)" \
  <<'EOF' || failed=1
import csv, json, sys
path, out, n, goal_mib, date, versions, machine = sys.argv[1:]
n, goal_kib = int(n), int(goal_mib) * 1024
rows = [json.loads(line) for line in open(path) if line.strip()]
mib = lambda kib: f"{kib / 1024:.1f}"
md = ["# Outrigger footprint", "", f"- date: {date}", f"- machine: {machine}",
      f"- versions: {versions}",
      f"- {n} idle HTTP/1.1 keep-alive client connections, one request done on each; "
      f"goal for outrigger: <= {goal_mib} MiB", "",
      f"| proxy | start -> /ready | idle RSS | RSS with {n} conns | peak RSS | KiB/conn | "
      "conns held | still usable | goal |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
table, ok = [], True
for r in rows:
    p, st, h = r["proxy"], r.get("startup") or {}, r.get("hold") or {}
    start = f"{st['median_ms']:.1f} ms" if st.get("median_ms") is not None else "-"
    if "rss_kib" not in h:
        ok = False
        md.append(f"| {p} | {start} | FAILED: {r.get('error') or h.get('error')} | | | | | | |")
        table.append([p, st.get("median_ms", ""), r.get("idle_rss_kib", ""), "", "", "", "", ""])
        continue
    per_conn = (h["rss_kib"] - r["idle_rss_kib"]) / max(1, h["open"])
    goal = "-"
    if p == "outrigger":
        met = h["rss_kib"] <= goal_kib and h["open"] == n and h["recheck_ok"] == h["rechecked"]
        goal, ok = ("met" if met else "MISSED"), ok and met
    if h["open"] != n:
        ok = False
    md.append(f"| {p} | {start} | {mib(r['idle_rss_kib'])} MiB | {mib(h['rss_kib'])} MiB | "
              f"{mib(h['hwm_kib'])} MiB | {per_conn:.2f} | {h['open']}/{n} | "
              f"{h['recheck_ok']}/{h['rechecked']} | {goal} |")
    table.append([p, st.get("median_ms", ""), r["idle_rss_kib"], h["rss_kib"], h["hwm_kib"],
                  f"{per_conn:.3f}", h["open"], h["failed"]])
    if h.get("first_errors"):
        md.append(f"|   first errors: {'; '.join(h['first_errors'])} |||||||||")
md.append("")
for r in rows:
    st = r.get("startup") or {}
    if st.get("all_ms"):
        md.append(f"- {r['proxy']} start -> /ready runs (ms): {', '.join(map(str, st['all_ms']))}")
    elif st.get("errors"):
        md.append(f"- {r['proxy']} start-up measurement failed: {'; '.join(st['errors'])}")
md += ["", "RSS is VmRSS summed over all the proxy's processes; 'still usable' re-sends a request "
       "on a sample of the held connections after the measurement."]
text = "\n".join(md) + "\n"
open(f"{out}/footprint.md", "w").write(text)
with open(f"{out}/footprint.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["proxy", "startup_ready_ms_median", "idle_rss_kib", "rss_with_conns_kib",
                "peak_rss_kib", "kib_per_conn", "conns_open", "conns_failed"])
    w.writerows(table)
print(text)
sys.exit(0 if ok else 1)
EOF
exit "$failed"
