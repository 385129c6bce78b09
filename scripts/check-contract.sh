#!/usr/bin/env bash
# The contract checks CI runs before the tests:
#   1. buf lint (STANDARD) on proto/;
#   2. gen/ and the vendored validate.proto are exactly what the sources produce;
#   3. buf breaking (FILE) against the previous commit, so a change cannot silently break
#      generated clients. Set AGW_BREAKING_AGAINST to compare with another git ref.
set -euo pipefail
cd "$(dirname "$0")/.."
buf=node_modules/.bin/buf

echo "== buf lint"
"$buf" lint

echo "== generated code is up to date"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node scripts/print-validate-proto.mjs "$tmp/validate.proto"
diff -u third_party/protovalidate/buf/validate/validate.proto "$tmp/validate.proto" \
  || { echo "third_party/protovalidate is stale: run node scripts/print-validate-proto.mjs"; exit 1; }
"$buf" generate -o "$tmp/out"
diff -ru gen "$tmp/out/gen" || { echo "gen/ is stale: run npm run generate and commit gen/"; exit 1; }

echo "== buf breaking"
against=${AGW_BREAKING_AGAINST:-HEAD~1}
if git rev-parse --verify --quiet "$against^{commit}" >/dev/null && git cat-file -e "$against:buf.yaml" 2>/dev/null; then
  # Only our contract: vendored modules come and go without breaking anyone's client.
  "$buf" breaking proto --against ".git#ref=$against,subdir=proto"
  echo "no breaking changes against $against"
else
  echo "no earlier commit with buf.yaml to compare against; skipped"
fi
