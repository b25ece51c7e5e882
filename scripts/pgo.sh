#!/usr/bin/env bash
# The profile for the profile-guided release build (CMakeLists.txt, OUTRIGGER_PGO): builds the
# instrumented binary in DIR/gen, runs it under the bench's loads (h1 keep-alive, h1 to an mTLS
# upstream, h2c to HTTP/1.1, h2c to h2c, and h1 with retries, least_request, a retry budget and
# outlier detection: bench/run.sh, one round each, about 35 s) and leaves the counts in DIR/data.
# Trains again only when the instrumented binary or this list of loads changed.
#
#   scripts/pgo.sh [--jobs N] DIR            build DIR/gen if needed, train if needed
#   scripts/pgo.sh --train BINARY DIR        train BINARY (built with OUTRIGGER_PGO=generate and
#                                            OUTRIGGER_PGO_DIR=DIR/data) once more
#
# Prints one word on stdout, the OUTRIGGER_PGO value for the release build: "use" when DIR/data
# holds counts of the current sources, "off" when the training failed or wrote no counts (the
# reason goes to stderr, the bench output to DIR/train.log): the build then goes on without a
# profile rather than failing. PGO_TRAIN_SECONDS (3) is the measured time of each load.
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS="$(nproc)"
BIN=""
while (($#)); do
  case "$1" in
    --jobs) JOBS="$2"; shift 2 ;;
    --train) BIN="$2"; shift 2 ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "pgo: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
(($# == 1)) || { echo "usage: scripts/pgo.sh [--jobs N] DIR | --train BINARY DIR" >&2; exit 2; }
mkdir -p "$1"
DIR="$(cd "$1" && pwd)"
DATA="$DIR/data"
STAMP="$DATA/.binary.sha256"
LOG="$DIR/train.log"
SECONDS_PER_LOAD="${PGO_TRAIN_SECONDS:-3}"
[[ "$SECONDS_PER_LOAD" =~ ^[1-9][0-9]?$ ]] || { echo "pgo: PGO_TRAIN_SECONDS must be 1..99" >&2; exit 2; }

CASES=h1-keepalive,h1-mtls-upstream,h2c-h1,h2-h2,h1-resilience

say() { echo "pgo: $*" >&2; }
has_counts() { compgen -G "$DATA/*connection.cc.gcda" >/dev/null; }

if [[ -z "$BIN" ]]; then
  GEN="$DIR/gen"
  cmake -S . -B "$GEN" -G Ninja -DCMAKE_BUILD_TYPE=Release -DOUTRIGGER_PGO=generate \
    -DOUTRIGGER_PGO_DIR="$DATA" -DOUTRIGGER_TESTS=OFF -DOUTRIGGER_BENCH=OFF >/dev/null
  cmake --build "$GEN" -j "$JOBS" --target outrigger >&2
  BIN="$GEN/proxy/outrigger"
  if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(sha256sum "$BIN" | cut -d' ' -f1) $CASES" ]] &&
    has_counts; then
    echo use
    exit 0
  fi
fi
[[ -x "$BIN" ]] || { say "no binary at $BIN; building without a profile"; echo off; exit 0; }
sum="$(sha256sum "$BIN" | cut -d' ' -f1)"

# Counts add up across runs, and counts of another binary do not match these sources: start empty.
rm -rf "$DATA"
mkdir -p "$DATA"
say "training $BIN under the bench loads (log: $LOG)"
if ! timeout 300 bench/run.sh -p outrigger --case "$CASES" \
  -d "$SECONDS_PER_LOAD" -w 1 -r 1 -o "$DIR/train" "$BIN" >"$LOG" 2>&1; then
  say "training failed; building without a profile. Last lines of $LOG:"
  tail -n 15 "$LOG" >&2 || true
  rm -rf "$DATA"
  echo off
  exit 0
fi
if ! has_counts; then
  say "the training wrote no profile counts to $DATA (not built with OUTRIGGER_PGO=generate" \
    "and OUTRIGGER_PGO_DIR=$DATA?); building without a profile"
  rm -rf "$DATA"
  echo off
  exit 0
fi
echo "$sum $CASES" >"$STAMP"
echo use
