#!/usr/bin/env node
// One-shot helper of deploy/compose.yaml: mints an enrollment token for the demo agents with
// the bootstrap admin key and writes it, owner-only, where the agents read it. Plain JavaScript
// (no tsx) talking Connect JSON over HTTP/1.1 through the load balancer, like `curl` would.
// Usage: node mint-enrollment-token.mjs <gateway base URL> <output file>
import { chmodSync, existsSync, writeFileSync } from "node:fs";

const [base, out] = process.argv.slice(2);
const key = process.env.AGW_ADMIN_KEY;
if (!base || !out || !key) {
  console.error("usage: AGW_ADMIN_KEY=… mint-enrollment-token.mjs <gateway URL> <output file>");
  process.exit(2);
}
if (existsSync(out)) {
  // Agents that enrolled keep their identity; a restart of the stack needs no new token.
  console.log(`${out} exists; not minting another token`);
  process.exit(0);
}
const body = JSON.stringify({ maxUses: 10, ttl: "3600s", labels: { deployment: "compose-demo" } });
for (let attempt = 1; attempt <= 60; attempt++) {
  try {
    const res = await fetch(`${base}/agentgateway.admin.v1.EnrollmentTokenService/CreateEnrollmentToken`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body,
      signal: AbortSignal.timeout(5000),
    });
    const answer = await res.json();
    if (res.ok && typeof answer.secret === "string") {
      writeFileSync(out, `${answer.secret}\n`, { mode: 0o600 });
      chmodSync(out, 0o600);
      console.log(`enrollment token ${answer.token?.id ?? ""} written to ${out} (secret not printed)`);
      process.exit(0);
    }
    // A wrong key will not get better by retrying.
    if (res.status === 401 || res.status === 403) {
      console.error(`gateway refused the admin key: ${answer.code ?? res.status}`);
      process.exit(1);
    }
    console.error(`attempt ${attempt}: ${res.status} ${answer.code ?? ""}`);
  } catch (err) {
    console.error(`attempt ${attempt}: ${err.message}`);
  }
  await new Promise((resolve) => setTimeout(resolve, 2000));
}
console.error("gave up after 60 attempts");
process.exit(1);
