import { randomBytes } from "node:crypto";
import { Code } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { createConnectTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { EnrollmentTokenService } from "../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { GoAwayReason } from "../gen/agentgateway/v1/control_pb.js";
import { gatewayClient, handshake, type Identity, register } from "../agent/lib/direct.js";
import { adminClient } from "./support/admin.js";
import { newIdentity } from "./support/agents.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { expectCode } from "./support/expect-code.js";
import { type GatewayProcess, spawnGateway } from "./support/gateway-process.js";
import { ackOf, openStream } from "./support/stream.js";

let database: TestDatabase;
let a: GatewayProcess;
let b: GatewayProcess;
const adminKey = `replica-test-${randomBytes(20).toString("hex")}`;

const transportTo = (url: string) => createConnectTransport({ baseUrl: url, httpVersion: "2" });
const adminOn = <S extends DescService>(service: S, url: string) => adminClient(service, url, adminKey);

async function enrollOn(url: string): Promise<{ agentId: string; identity: Identity }> {
  const { secret } = await adminOn(EnrollmentTokenService, url).createEnrollmentToken({});
  const identity = newIdentity();
  const reg = await register(gatewayClient(transportTo(url)), { token: secret, identity, name: `r-${Math.random().toString(36).slice(2, 7)}` });
  return { agentId: reg.agentId, identity };
}

beforeAll(async () => {
  database = await createTestDatabase();
  const env = { DATABASE_URL: database.url, AGW_BOOTSTRAP_ADMIN_KEY: adminKey, AGW_HANDSHAKE_RATE: "1000/s:1000" };
  [a, b] = await Promise.all([spawnGateway(env), spawnGateway(env)]);
}, 60_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await database?.drop();
});

describe("two gateway processes on one PostgreSQL", () => {
  it("cuts off an agent streaming on replica B when it is revoked through replica A, and refuses its next handshake", async () => {
    const agent = await enrollOn(a.url);
    const onB = gatewayClient(transportTo(b.url));
    const session = await handshake(onB, agent.agentId, agent.identity);
    const stream = openStream(onB, session);
    expect((await stream.next()).kind.case).toBe("welcome");
    await adminOn(AgentService, a.url).revokeAgent({ id: agent.agentId, reason: "revoked on A" });
    const goAway = await stream.next();
    expect(goAway.kind.case === "goAway" && goAway.kind.value.reason).toBe(GoAwayReason.REVOKED);
    await stream.ended;
    await expectCode(handshake(onB, agent.agentId, agent.identity), Code.PermissionDenied, /revoked/);
  });

  it("delivers every queued command exactly once, in order, after the agent's replica is killed and it reconnects to the other", async () => {
    const agent = await enrollOn(a.url);
    const onB = gatewayClient(transportTo(b.url));
    const session = await handshake(onB, agent.agentId, agent.identity);
    const stream = openStream(onB, session);
    await stream.next();
    const revokeSomeone = async () => {
      const other = await enrollOn(a.url);
      await adminOn(AgentService, a.url).revokeAgent({ id: other.agentId, reason: "queue a notice" });
    };
    await revokeSomeone();
    await revokeSomeone();
    const received: bigint[] = [];
    for (let i = 0; i < 2; i++) {
      const m = await stream.next();
      if (m.kind.case === "command") received.push(m.kind.value.sequence);
    }
    expect(received).toHaveLength(2);
    // The agent applies and acks the first; the second is in flight when B dies.
    const applied = received[0] ?? 0n;
    stream.send(ackOf(applied));
    await b.kill();
    await stream.ended;
    await revokeSomeone();
    await revokeSomeone();
    const onA = gatewayClient(transportTo(a.url));
    const resumed = openStream(onA, session, applied);
    expect((await resumed.next()).kind.case).toBe("welcome");
    const redelivered: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      const m = await resumed.next();
      if (m.kind.case === "command") redelivered.push(m.kind.value.sequence);
    }
    expect(redelivered).toEqual([applied + 1n, applied + 2n, applied + 3n]);
    await expect(resumed.next(800)).rejects.toThrow(/timed out/);
    resumed.close();
  });

  it("catches up from the database when a replica's notification connection is lost", async () => {
    const agent = await enrollOn(a.url);
    const onA = gatewayClient(transportTo(a.url));
    const session = await handshake(onA, agent.agentId, agent.identity);
    const stream = openStream(onA, session);
    await stream.next();
    const sql = new pg.Client({ connectionString: database.url });
    await sql.connect();
    try {
      // Cut every LISTEN connection: notifications sent meanwhile are lost for good.
      const { rowCount } = await sql.query("select pg_terminate_backend(pid) from pg_stat_activity where query ilike 'listen %'");
      expect(rowCount).toBeGreaterThan(0);
      const other = await enrollOn(a.url);
      await adminOn(AgentService, a.url).revokeAgent({ id: other.agentId, reason: "while the bus was down" });
    } finally {
      await sql.end();
    }
    const notice = await stream.next(10_000);
    expect(notice.kind.case === "command" && notice.kind.value.payload.case).toBe("peerRevoked");
    stream.close();
  });
});
