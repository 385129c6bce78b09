#!/usr/bin/env bash
# Drives a running gateway with generic tools only, the way an operator debugging it would:
#   - `buf curl` (node_modules/.bin/buf) with server reflection (no local protos), over
#     --protocol connect, grpc and grpcweb, with --http2-prior-knowledge for cleartext h2c;
#   - plain `curl` with Connect JSON (HTTP/1.1 and h2c).
# Checks: health over each protocol, listing services/methods, minting an enrollment token,
# listing agents, reading the audit log, a 31-byte key → invalid_argument naming the field
# (with a buf.validate.Violations detail), an admin call without (or with a bad) key →
# unauthenticated.
#
# Usage: AGW_ADMIN_KEY=<admin API key> test/interop/tools.sh http://127.0.0.1:7070
# Prints TAP-style "ok"/"not ok" lines; exits 1 on any mismatch, 2 on usage errors.
# JSON is inspected with node (always present in this repo). The admin key and minted secrets
# are never printed.
set -uo pipefail

url="${1:-${AGW_URL:-}}"
key="${AGW_ADMIN_KEY:-}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
buf="${BUF:-$repo/node_modules/.bin/buf}"
if [[ -z "$url" || -z "$key" ]]; then
  echo "usage: AGW_ADMIN_KEY=<key> $0 http://HOST:PORT" >&2
  exit 2
fi
url="${url%/}"
for tool in "$buf" curl node; do
  command -v "$tool" >/dev/null 2>&1 || { echo "tools.sh: $tool not found" >&2; exit 2; }
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failures=0
count=0

ok() { count=$((count + 1)); echo "ok $count - $1"; }
not_ok() {
  count=$((count + 1)); failures=$((failures + 1))
  echo "not ok $count - $1"
  [[ -n "${2:-}" ]] && sed 's/^/#   /' <<<"$2" | sed -E 's/agw[esk]_[A-Za-z0-9_-]{43}/agw?_<redacted>/g' | head -40
}
# check <description> <js boolean expression over `r` (stdin parsed as JSON)> <file>
check_json() {
  local desc="$1" expr="$2" file="$3"
  if node -e '
    const fs = require("fs");
    let r;
    try { r = JSON.parse(fs.readFileSync(process.argv[2], "utf8")); } catch (e) { process.exit(3); }
    process.exit((function () { return eval(process.argv[1]); })() ? 0 : 1);
  ' "$expr" "$file" 2>/dev/null; then
    ok "$desc"
  else
    not_ok "$desc" "$(cat "$file" 2>/dev/null; [[ "$file" == "$tmp/out" ]] && cat "$tmp/err" 2>/dev/null)"
  fi
}
# bufc <protocol> <args…>: buf curl over h2c; stdout → $tmp/out, stderr → $tmp/err, returns its exit code.
bufc() {
  local protocol="$1"; shift
  "$buf" curl --protocol "$protocol" --http2-prior-knowledge --timeout 20s "$@" >"$tmp/out" 2>"$tmp/err"
}
auth=(-H "Authorization: Bearer $key")

# --- health ---------------------------------------------------------------------------------
for p in connect grpc grpcweb; do
  bufc "$p" "$url/grpc.health.v1.Health/Check"
  check_json "health over $p (buf curl, reflection): SERVING" 'r.status === "SERVING"' "$tmp/out"
done
curl -sS -H 'Content-Type: application/json' -d '{}' "$url/grpc.health.v1.Health/Check" >"$tmp/out" 2>"$tmp/err"
check_json "health over Connect JSON, HTTP/1.1 (curl): SERVING" 'r.status === "SERVING"' "$tmp/out"
curl -sS --http2-prior-knowledge -H 'Content-Type: application/json' -d '{}' "$url/grpc.health.v1.Health/Check" >"$tmp/out" 2>"$tmp/err"
check_json "health over Connect JSON, h2c (curl): SERVING" 'r.status === "SERVING"' "$tmp/out"
"$buf" curl --protocol connect --timeout 20s "$url/grpc.health.v1.Health/Check" >"$tmp/out" 2>"$tmp/err"
check_json "health over connect, HTTP/1.1 (buf curl)" 'r.status === "SERVING"' "$tmp/out"

# --- reflection -----------------------------------------------------------------------------
for p in connect grpc grpcweb; do
  if bufc "$p" --list-methods "$url" && grep -qx 'agentgateway.v1.AgentGatewayService/ControlStream' "$tmp/out" \
    && grep -qx 'agentgateway.v1.AgentGatewayService/Register' "$tmp/out" \
    && grep -qx 'agentgateway.admin.v1.EnrollmentTokenService/CreateEnrollmentToken' "$tmp/out" \
    && grep -qx 'grpc.health.v1.Health/Check' "$tmp/out"; then
    ok "list methods over $p (reflection): $(wc -l <"$tmp/out") methods"
  else
    not_ok "list methods over $p (reflection)" "$(cat "$tmp/out" "$tmp/err")"
  fi
done
for reflect in grpc-v1 grpc-v1alpha; do
  if bufc grpc --reflect-protocol "$reflect" --list-services "$url" && grep -qx 'agentgateway.v1.AgentGatewayService' "$tmp/out"; then
    ok "list services with reflection $reflect"
  else
    not_ok "list services with reflection $reflect" "$(cat "$tmp/out" "$tmp/err")"
  fi
done

# --- who am I ------------------------------------------------------------------------------
bufc connect "${auth[@]}" -d '{}' "$url/agentgateway.admin.v1.ApiKeyService/WhoAmI"
check_json "WhoAmI: the admin key, its role and tenant" 'r.key && r.key.role === "ROLE_ADMIN" && typeof r.tenantId === "string"' "$tmp/out"

# --- enrollment tokens ----------------------------------------------------------------------
secret_ok='typeof r.secret === "string" && /^agwe_[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/.test(r.secret) && r.token && r.token.displayPrefix === "agwe:" + require("node:crypto").createHash("sha256").update(r.secret).digest("hex").slice(0, 8)'
for p in connect grpc grpcweb; do
  bufc "$p" "${auth[@]}" -d '{"maxUses": 1, "ttl": "600s", "description": "tools.sh '"$p"'"}' \
    "$url/agentgateway.admin.v1.EnrollmentTokenService/CreateEnrollmentToken"
  check_json "create enrollment token over $p (secret shaped agwe_…, display prefix matches)" "$secret_ok" "$tmp/out"
done
curl -sS -H 'Content-Type: application/json' "${auth[@]}" -d '{"maxUses": 1, "description": "tools.sh curl"}' \
  "$url/agentgateway.admin.v1.EnrollmentTokenService/CreateEnrollmentToken" >"$tmp/out" 2>"$tmp/err"
check_json "create enrollment token with curl (Connect JSON)" "$secret_ok" "$tmp/out"
bufc grpc "${auth[@]}" -d '{}' "$url/agentgateway.admin.v1.EnrollmentTokenService/ListEnrollmentTokens"
check_json "list enrollment tokens: the 4 minted here are listed, without secrets" \
  'r.tokens.filter(t => (t.description || "").startsWith("tools.sh ")).length >= 4 && !JSON.stringify(r).includes("\"secret\"")' "$tmp/out"

# --- agents ---------------------------------------------------------------------------------
for p in connect grpc grpcweb; do
  bufc "$p" "${auth[@]}" -d '{"pageSize": 10}' "$url/agentgateway.admin.v1.AgentService/ListAgents"
  check_json "list agents over $p" 'typeof r === "object" && !("code" in r) && (r.agents === undefined || Array.isArray(r.agents))' "$tmp/out"
done
curl -sS -H 'Content-Type: application/json' "${auth[@]}" -d '{}' "$url/agentgateway.admin.v1.AgentService/ListAgents" >"$tmp/out" 2>"$tmp/err"
check_json "list agents with curl" 'typeof r === "object" && !("code" in r) && (r.agents === undefined || Array.isArray(r.agents))' "$tmp/out"

bufc grpc "${auth[@]}" -d '{"pageSize": 1}' "$url/agentgateway.admin.v1.AgentService/ListAgents"
first_agent="$(node -e 'try { const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); process.stdout.write((r.agents && r.agents[0] && r.agents[0].id) || ""); } catch {}' "$tmp/out")"
if [[ -n "$first_agent" ]]; then
  bufc connect "${auth[@]}" -d '{"id": "'"$first_agent"'"}' "$url/agentgateway.admin.v1.AgentService/GetAgent"
  check_json "get agent $first_agent" 'r.agent && typeof r.agent.verificationCode === "string" && r.agent.state.startsWith("AGENT_STATE_")' "$tmp/out"
else
  ok "get agent # SKIP no agents enrolled yet"
fi
zero_key="$(node -e 'process.stdout.write(Buffer.alloc(32, 9).toString("base64"))')"
bufc connect -d '{"agentId": "00000000-0000-4000-8000-000000000000", "identityPublicKey": "'"$zero_key"'"}' \
  "$url/agentgateway.v1.AgentGatewayService/BeginAuthHandshake"
rc=$?
if [[ $rc -eq 40 ]]; then ok "BeginAuthHandshake for an unknown agent: buf curl exit 40 (= 8 × NOT_FOUND)"; else not_ok "BeginAuthHandshake for an unknown agent: exit $rc, want 40" "$(cat "$tmp/err")"; fi
check_json "BeginAuthHandshake for an unknown agent: not_found" 'r.code === "not_found"' "$tmp/err"

# --- audit log ------------------------------------------------------------------------------
bufc connect "${auth[@]}" -d '{"action": "enrollment_token.created", "pageSize": 100}' "$url/agentgateway.admin.v1.AuditService/ListAuditEvents"
check_json "audit log lists the enrollment_token.created records" \
  'r.events.length >= 4 && r.events.every(e => e.action === "enrollment_token.created" && /^operator:/.test(e.actor))' "$tmp/out"
bufc grpc "${auth[@]}" -d '{}' "$url/agentgateway.admin.v1.AuditService/VerifyAuditChain"
check_json "audit chain verifies" 'r.ok === true && Number(r.checked) >= 4' "$tmp/out"

# --- validation errors ----------------------------------------------------------------------
key31="$(node -e 'process.stdout.write(Buffer.alloc(31, 7).toString("base64"))')"
sig64="$(node -e 'process.stdout.write(Buffer.alloc(64, 1).toString("base64"))')"
bad_register='{"enrollmentToken": "agwe_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "identityPublicKey": "'"$key31"'", "name": "tools-probe", "proofSignature": "'"$sig64"'"}'
violations='r.code === "invalid_argument" && /identity_public_key/.test(r.message) && (r.details || []).some(d => d.type === "buf.validate.Violations" && (!d.debug || d.debug.violations.some(v => v.field.elements.some(e => e.fieldName === "identity_public_key") && v.ruleId === "bytes.len")))'
for p in connect grpc grpcweb; do
  bufc "$p" -d "$bad_register" "$url/agentgateway.v1.AgentGatewayService/Register"
  rc=$?
  if [[ $rc -eq 24 ]]; then ok "31-byte key over $p: buf curl exit 24 (= 8 × INVALID_ARGUMENT)"; else not_ok "31-byte key over $p: buf curl exit $rc, want 24" "$(cat "$tmp/err")"; fi
  check_json "31-byte key over $p: invalid_argument naming identity_public_key, buf.validate.Violations detail" "$violations" "$tmp/err"
done
status="$(curl -sS -o "$tmp/out" -w '%{http_code}' -H 'Content-Type: application/json' -d "$bad_register" "$url/agentgateway.v1.AgentGatewayService/Register")"
if [[ "$status" == 400 ]]; then ok "31-byte key with curl: HTTP 400"; else not_ok "31-byte key with curl: HTTP $status, want 400" "$(cat "$tmp/out")"; fi
check_json "31-byte key with curl: invalid_argument naming identity_public_key, buf.validate.Violations detail" "$violations" "$tmp/out"

# --- authentication -------------------------------------------------------------------------
for p in connect grpc grpcweb; do
  bufc "$p" -d '{}' "$url/agentgateway.admin.v1.AgentService/ListAgents"
  rc=$?
  if [[ $rc -eq 128 ]]; then ok "admin call without a key over $p: buf curl exit 128 (= 8 × UNAUTHENTICATED)"; else not_ok "admin call without a key over $p: exit $rc, want 128" "$(cat "$tmp/out" "$tmp/err")"; fi
  check_json "admin call without a key over $p: unauthenticated" 'r.code === "unauthenticated"' "$tmp/err"
done
status="$(curl -sS -o "$tmp/out" -w '%{http_code}' -H 'Content-Type: application/json' -d '{}' "$url/agentgateway.admin.v1.AgentService/ListAgents")"
if [[ "$status" == 401 ]]; then ok "admin call without a key with curl: HTTP 401"; else not_ok "admin call without a key with curl: HTTP $status, want 401" "$(cat "$tmp/out")"; fi
check_json "admin call without a key with curl: unauthenticated" 'r.code === "unauthenticated"' "$tmp/out"
fake_key="agwk_$(node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("base64url"))')"
bufc grpc -H "Authorization: Bearer $fake_key" -d '{}' "$url/agentgateway.admin.v1.AgentService/ListAgents"
check_json "admin call with an unknown agwk_ key: unauthenticated" 'r.code === "unauthenticated"' "$tmp/err"
bufc connect -H "Authorization: Bearer $key" -d '{}' "$url/agentgateway.v1.AgentGatewayService/UploadHeartbeat"
check_json "agent RPC with an operator key instead of a session: unauthenticated" 'r.code === "unauthenticated"' "$tmp/err"

echo "1..$count"
if [[ $failures -gt 0 ]]; then
  echo "# $failures of $count checks failed" >&2
  exit 1
fi
echo "# all $count checks passed"
