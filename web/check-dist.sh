#!/usr/bin/env bash
# The built console is committed (web/dist) so that `npm ci && npm start` serves it without a
# build step. This check rebuilds it from web/src into a scratch directory and fails when the
# result differs from what is committed, the way scripts/check-contract.sh guards gen/.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
npx vite build web --outDir "$scratch" --emptyOutDir --logLevel warn
if ! diff -r "$scratch" web/dist >/dev/null; then
  echo "web/dist is stale: run \`npm run build:web\` and commit web/dist" >&2
  diff -r "$scratch" web/dist | head -20 >&2 || true
  exit 1
fi
echo "web/dist matches web/src"
