#!/usr/bin/env bash
# Renders the Helm chart's examples without Helm (none can be installed on this project's
# machines): deploy/helm/render/main.go is Helm's engine (Go text/template + sprig + Helm's
# functions), built in GOPATH mode from Debian packages:
#   apt-get install golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev
# Usage: scripts/render-chart.sh [OUTDIR]   (default deploy/helm/rendered; CI renders into a
# temporary directory and compares, see scripts/check-deploy.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-deploy/helm/rendered}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= go build -o "$bin/render" ./deploy/helm/render/main.go
mkdir -p "$out"
for example in deploy/helm/examples/*-values.yaml; do
  name=$(basename "$example" -values.yaml)
  {
    echo "# Rendered by scripts/render-chart.sh from deploy/helm/agentgateway with $example."
    echo "# Do not edit: change the chart and run the script again (CI checks this file is current)."
    "$bin/render" -chart deploy/helm/agentgateway -name agw -namespace agentgateway -f "$example"
  } >"$out/$name.yaml"
done
# A chart without a database must not render at all.
if "$bin/render" -chart deploy/helm/agentgateway -name agw -namespace agentgateway >/dev/null 2>"$bin/err"; then
  echo "render-chart: the chart rendered without database settings; it must refuse" >&2
  exit 1
fi
grep -q "the chart needs PostgreSQL" "$bin/err"
echo "rendered: $(ls "$out" | tr '\n' ' ')"
