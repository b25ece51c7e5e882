#!/usr/bin/env bash
# Runs a libFuzzer target for a bounded time from its seed corpus (tests/fuzz/corpus/NAME), with
# the inputs it discovers kept in a private temp folder (never in the source tree).
#
#   tests/fuzz/run.sh FUZZER SECONDS SEED_DIR [libFuzzer options...]
#
# Exit 0 when no input crashed, timed out or leaked; otherwise libFuzzer's report, the input that
# did (base64, and the file under the temp folder, which is then kept) and exit 1.
set -euo pipefail
(($# >= 3)) || { echo "usage: tests/fuzz/run.sh FUZZER SECONDS SEED_DIR [options...]" >&2; exit 2; }
fuzzer="$1" seconds="$2" seeds="$3"
shift 3
[[ -x "$fuzzer" ]] || { echo "fuzz: no fuzzer at $fuzzer" >&2; exit 2; }
[[ "$seconds" =~ ^[1-9][0-9]{0,4}$ ]] || { echo "fuzz: SECONDS must be 1..99999" >&2; exit 2; }
tmp="$(mktemp -d "${TMPDIR:-/tmp}/outrigger-fuzz.XXXXXX")"
mkdir "$tmp/corpus"
status=0
timeout -k 10 $((seconds + 120)) "$fuzzer" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$tmp/" "$@" "$tmp/corpus" "$seeds" \
  >"$tmp/log" 2>&1 || status=$?
grep -E '^stat::(number_of_executed_units|new_units_added)' "$tmp/log" || true
if ((status != 0)); then
  tail -n 60 "$tmp/log"
  for a in "$tmp"/crash-* "$tmp"/timeout-* "$tmp"/leak-* "$tmp"/oom-*; do
    [[ -e "$a" ]] && echo "fuzz: failing input $a (base64: $(base64 -w0 "$a"))"
  done
  echo "fuzz: $fuzzer failed (exit $status); kept $tmp" >&2
  exit 1
fi
rm -rf "$tmp"
