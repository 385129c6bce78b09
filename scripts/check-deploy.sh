#!/usr/bin/env bash
# Checks deploy/ with the tools that run on a machine without a container engine, Helm or a
# cluster (docs/operations.md, "What CI checks and what it does not"). Called by .ci/run; the
# rest of the deployment checks are vitest suites that `npm test` runs:
#   test/deploy-container.test.ts   the Containerfile's ENTRYPOINT+CMD in a read-only sandbox
#   test/deploy-compose.test.ts     compose.yaml against the Compose Specification schema
#   test/deploy-compose-run.test.ts compose.yaml's commands run as processes (migrate, replicas, agents)
#   test/deploy-kubernetes.test.ts  the chart's values schema and rendered manifests
#   test/deploy-health.test.ts      /healthz and /readyz
# Needs (Debian): systemd, golang-go, golang-github-masterminds-sprig-dev, golang-github-ghodss-yaml-dev.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "check-deploy: $*" >&2
  exit 1
}

# systemd-analyze verify exits 0 on warnings (an unknown or misspelt directive is only
# "ignoring"), so any output at all is a failure here.
verify_unit() {
  local out
  if ! out=$(systemd-analyze verify "$1" 2>&1) || [ -n "$out" ]; then
    echo "$out"
    return 1
  fi
}

echo "-- systemd units: systemd-analyze verify, and an exposure score of at most 2.0"
for unit in deploy/systemd/*.service; do
  verify_unit "$unit" || fail "$unit does not verify"
  systemd-analyze security --offline=yes --threshold=20 "$unit" >"$tmp/security.txt" 2>&1 ||
    fail "$unit: $(grep 'Overall exposure' "$tmp/security.txt")"
  echo "   $unit: $(grep -o 'Overall exposure level.*' "$tmp/security.txt")"
done
# The check must be able to fail: a misspelt directive and a missing binary in copies of the unit.
sed 's/^NoNewPrivileges=yes/NoNewPrivilges=yes/' deploy/systemd/agentgateway.service >"$tmp/typo.service"
sed 's|^ExecStart=/usr/bin/node|ExecStart=/usr/bin/no-such-node|' deploy/systemd/agentgateway.service >"$tmp/badexec.service"
for broken in typo badexec; do
  if verify_unit "$tmp/$broken.service" >/dev/null; then fail "systemd-analyze verify accepted $broken.service"; fi
done
sed 's/^ProtectSystem=strict/ProtectSystem=no/; s/^NoNewPrivileges=yes/NoNewPrivileges=no/; s/^CapabilityBoundingSet=$/#/; s/^SystemCallFilter=.*/#/; s/^DynamicUser=yes/DynamicUser=no/' \
  deploy/systemd/agentgateway.service >"$tmp/weak.service"
if systemd-analyze security --offline=yes --threshold=20 "$tmp/weak.service" >/dev/null 2>&1; then
  fail "the exposure threshold accepted a unit without its hardening"
fi

echo "-- Helm chart: render with Helm's engine and compare with deploy/helm/rendered/"
bash scripts/render-chart.sh "$tmp/rendered"
diff -ru deploy/helm/rendered "$tmp/rendered" || fail "deploy/helm/rendered/ is stale: run scripts/render-chart.sh and commit the result"
echo "check-deploy: ok"
