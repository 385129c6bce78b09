import { randomBytes } from "node:crypto";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { EnrollmentTokenService } from "../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { GoAwayReason } from "../gen/agentgateway/v1/control_pb.js";
import { gatewayClient, handshake, register } from "../agent/lib/direct.js";
import { adminClient } from "./support/admin.js";
import { newIdentity } from "./support/agents.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { type GatewayProcess, spawnGateway } from "./support/gateway-process.js";
import { openStream, type TestStream } from "./support/stream.js";

// AGW_WORKERS=2: one port, two gateway processes (node:cluster) that share PostgreSQL as
// replicas do. Each connection lands on one worker; what one worker does reaches streams held
// by the other.

let database: TestDatabase;
let gw: GatewayProcess;
const adminKey = `workers-test-${randomBytes(20).toString("hex")}`;

beforeAll(async () => {
  database = await createTestDatabase();
  gw = await spawnGateway({ DATABASE_URL: database.url, AGW_BOOTSTRAP_ADMIN_KEY: adminKey, AGW_WORKERS: "2", AGW_HANDSHAKE_RATE: "1000/s:1000" }, 60_000);
  const deadline = Date.now() + 60_000;
  while (!/2 worker processes listening/.test(gw.output())) {
    if (Date.now() > deadline) throw new Error(`the second worker did not start:\n${gw.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}, 90_000);

afterAll(async () => {
  await gw?.stop();
  await database?.drop();
});

describe("several gateway workers on one port", () => {
  it("spreads connections over both workers, and a revocation reaches streams on either", async () => {
    const { secret } = await adminClient(EnrollmentTokenService, gw.url, adminKey).createEnrollmentToken({ maxUses: 8 });
    const streams: Array<{ agentId: string; stream: TestStream; replicaId: string }> = [];
    for (let i = 0; i < 6; i++) {
      // A transport of its own: a new HTTP/2 connection, handed to the next worker.
      const client = gatewayClient(createConnectTransport({ baseUrl: gw.url, httpVersion: "2" }));
      const identity = newIdentity();
      const reg = await register(client, { token: secret, identity, name: `w-${i}` });
      const session = await handshake(client, reg.agentId, identity);
      const stream = openStream(client, session);
      const welcome = await stream.next(20_000);
      if (welcome.kind.case !== "welcome") throw new Error(`expected a welcome, got ${welcome.kind.case}`);
      streams.push({ agentId: reg.agentId, stream, replicaId: welcome.kind.value.replicaId });
    }
    const replicas = new Set(streams.map((s) => s.replicaId));
    expect(replicas.size).toBe(2);
    const [victim, ...peers] = streams;
    if (!victim) throw new Error("no streams");
    await adminClient(AgentService, gw.url, adminKey).revokeAgent({ id: victim.agentId, reason: "workers" });
    const goAway = await victim.stream.next(20_000);
    expect(goAway.kind.case === "goAway" && goAway.kind.value.reason).toBe(GoAwayReason.REVOKED);
    for (const peer of peers) {
      const notice = await peer.stream.next(20_000);
      expect(notice.kind.case === "command" && notice.kind.value.payload.case === "peerRevoked" && notice.kind.value.payload.value.agentId).toBe(victim.agentId);
      peer.stream.close();
    }
    // Both workers held peers that got the notice.
    expect(new Set(peers.map((p) => p.replicaId)).size).toBe(2);
  });

  it("stops every worker on SIGTERM", async () => {
    await gw.stop();
    expect(gw.child.exitCode ?? gw.child.signalCode).not.toBeNull();
  });
});
