#!/usr/bin/env bash
# The local multi-account mesh (examples/README.md, examples/mesh/README.md):
#
#   examples/mesh/mesh.sh demo [--bin PATH] [--variant auto|plain|mtls] [--oneshot]
#   examples/mesh/mesh.sh up [--bin PATH] [--variant ...]     prints the mesh id, leaves it running
#   examples/mesh/mesh.sh status [ID]
#   examples/mesh/mesh.sh down [ID | --all]
#
# `demo` builds the mesh, makes calls across the "accounts" both ways, prints what happened, and
# keeps running until Ctrl-C (DEMO_ONESHOT=1 or --oneshot: stop right after). Whatever happens,
# the EXIT trap removes this mesh (namespaces, processes, files) by its id.
# Without root there are no network namespaces: `demo` says so and runs the single-namespace demo
# (scripts/demo.sh) instead.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
cmd=${1:-demo}
[ $# -gt 0 ] && shift

bin_arg() {  # the value of --bin in "$@", if any
  while [ $# -gt 0 ]; do
    case "$1" in --bin) echo "${2:-}"; return ;; --bin=*) echo "${1#--bin=}"; return ;; esac
    shift
  done
}

if [ "$(id -u)" != 0 ]; then
  if [ "$cmd" = demo ]; then
    echo "mesh: the multi-account mesh needs root for network namespaces (ip netns); you are" \
         "$(id -un), so it cannot run here." >&2
    echo "mesh: falling back to the single-namespace demo (scripts/demo.sh); run as root" \
         "(e.g. sudo make demo) for the mesh." >&2
    bin=$(bin_arg "$@")
    exec "$REPO/scripts/demo.sh" ${bin:+"$bin"}
  fi
  echo "mesh: '$cmd' needs root (network namespaces)" >&2
  exit 1
fi

case "$cmd" in
  demo)
    ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n' | cut -c1-5)
    trap '"$PY" "$HERE/mesh.py" down "$ID" >/dev/null 2>&1 || true' EXIT
    trap 'exit 130' INT TERM   # mesh.py tears down on the same signal; the EXIT trap makes sure
    extra=()
    [ "${DEMO_ONESHOT:-0}" = 1 ] && extra+=(--oneshot)
    "$PY" "$HERE/mesh.py" demo --id "$ID" "$@" "${extra[@]}"
    ;;
  up | down | status)
    exec "$PY" "$HERE/mesh.py" "$cmd" "$@"
    ;;
  *)
    echo "usage: $0 demo|up|status|down [options]" >&2
    exit 2
    ;;
esac
