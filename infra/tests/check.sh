#!/usr/bin/env bash
# The infra checker, as ctest's infra.check runs it (from any working directory): checks infra/
# offline (syntax, terraform fmt, hashicorp/aws schema, references, module wiring, tfvars,
# policies), then runs the checker's own tests (broken fixtures that must fail with given errors,
# policy fixtures). No network, no Terraform binary. Exit 0 only when everything passes.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if ! command -v node >/dev/null; then
  echo "infra check: node is not installed (scripts/install-deps.sh installs it)" >&2
  exit 2
fi
for pkg in @cdktf/hcl2json @cdktf/hcl-tools @cdktn/provider-aws; do
  if [ ! -f "node_modules/$pkg/package.json" ]; then
    echo "infra check: node_modules/$pkg is missing: run scripts/install-deps.sh (npm ci in infra/tests)" >&2
    exit 2
  fi
done

# node_modules must hold the versions of package-lock.json (install-deps only runs npm ci when
# node_modules is absent, so a lock file changed since then shows up here).
if ! node -e '
  const lock = require("./package-lock.json").packages;
  let bad = 0;
  for (const [k, v] of Object.entries(lock)) {
    if (!k.startsWith("node_modules/") || k.split("node_modules/").length > 2) continue;
    let got = null;
    try { got = require("./" + k + "/package.json").version; } catch (e) {}
    if (got !== v.version) { console.error(`  ${k.slice(13)}: installed ${got}, locked ${v.version}`); bad++; }
  }
  process.exit(bad ? 1 : 0);'; then
  echo "infra check: node_modules differs from package-lock.json: run (cd infra/tests && npm ci)" >&2
  exit 2
fi

status=0
echo "== infra: checking the Terraform tree"
node bin/check.js || status=1
if [ -d test ]; then
  echo
  echo "== infra: the checker's own tests"
  node --test --test-reporter=spec test/ || status=1
fi
exit $status
