#!/usr/bin/env bash
# Installs what outrigger needs from Debian 12's packages (and the infra checker's npm lockfile).
# Idempotent and quiet: when everything is present it prints nothing and touches nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  build-essential cmake ninja-build ccache pkg-config
  libboost1.81-all-dev libssl-dev libnghttp2-dev libyaml-cpp-dev libc-ares-dev liburing-dev
  libgoogle-perftools-dev libgtest-dev libgmock-dev libbenchmark-dev
  curl python3 openssl prometheus dnsmasq-base nginx-light haproxy nghttp2 wrk
  gnuplot-nox python3-botocore python3-awscrt python3-h2 python3-hpack python3-grpcio python3-websocket
  python3-websockets sslscan
  docker-compose iproute2 jq procps linux-perf clang-16 libclang-rt-16-dev
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from another repository that bundles npm; only ask Debian when absent.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Terraform checker's npm packages (exact versions from infra/tests/package-lock.json).
if [ -f infra/tests/package-lock.json ] && [ ! -d infra/tests/node_modules ]; then
  echo "install-deps: npm ci in infra/tests"
  (cd infra/tests && npm ci --silent --no-audit --no-fund >/dev/null)
fi
exit 0
