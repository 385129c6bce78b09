import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import type { ControlStreamResponse } from "../gen/agentgateway/v1/control_pb.js";
import { gatewayClient, type GatewayClient } from "../agent/lib/direct.js";
import { enqueueForAgents } from "../server/control/command-store.js";
import { peerRevokedBody } from "../server/control/commands.js";
import { createTenant, type EnrolledAgent, enrollAgent } from "./support/agents.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";
import { ackOf, openStream, type TestStream } from "./support/stream.js";

// A tenant-wide notice (a peer revocation) is one row for the whole tenant, not one per agent
// (docs/protocol.md, "ControlStream"): these tests attack what that must not weaken —
// delivery to agents offline at the time, per-agent acknowledgement, sequence order with the
// agents' own commands, and the audience (not the revoked agent, not agents enrolled later).

let gw: TestGateway;
let client: GatewayClient;

beforeAll(async () => {
  // Many agents enroll from one address in quick succession: lift the per-source Register limit.
  gw = await startTestGateway({ handshakeRatePerAgent: "1000/s:1000", registerRatePerSource: "1000/s:1000" });
  client = gatewayClient(gw.transport);
});

afterAll(async () => {
  await gw?.stop();
});

const db = () => gw.gateway.context.database.db;

async function nextCommand(stream: TestStream): Promise<Extract<ControlStreamResponse["kind"], { case: "command" }>["value"]> {
  for (;;) {
    const m = await stream.next(10_000);
    if (m.kind.case === "command") return m.kind.value;
    if (m.kind.case === "goAway") throw new Error(`unexpected GoAway ${m.kind.value.reason}`);
  }
}

async function welcomed(agent: EnrolledAgent, lastApplied = 0n): Promise<TestStream> {
  const stream = openStream(client, agent.session, lastApplied);
  const welcome = await stream.next(10_000);
  expect(welcome.kind.case).toBe("welcome");
  return stream;
}

/** Command rows of all kinds, and each agent row's version (xmin changes when a row is written). */
async function snapshot(tenantId: string) {
  const commands = await sql<{ n: string }>`select (select count(*) from agent_commands) + (select count(*) from tenant_commands) as n`.execute(db());
  const rows = await sql<{ id: string; xmin: string }>`select id, xmin::text from agents where tenant_id = ${tenantId}`.execute(db());
  return { commands: Number(commands.rows[0]?.n), xmin: new Map(rows.rows.map((r) => [r.id, r.xmin])) };
}

/** Enrolls `n` agents in the tenant of `adminKey` through the real API (ACTIVE, with sessions). */
async function fleetIn(adminKey: string | undefined, n: number): Promise<EnrolledAgent[]> {
  const out: EnrolledAgent[] = [];
  for (let i = 0; i < n; i++) out.push(await enrollAgent(adminKey ? { ...gw, admin: (s, key) => gw.admin(s, key ?? adminKey) } : gw));
  return out;
}

describe("tenant-wide notices", () => {
  it("a revocation writes the same number of command rows whatever the size of the fleet, and no peer's row", async () => {
    const deltas: number[] = [];
    for (const size of [2, 25]) {
      const tenant = await createTenant(gw, `notices-${size}`);
      const fleet = await fleetIn(tenant.adminKey, size + 1);
      const [victim] = fleet;
      if (!victim) throw new Error("no victim");
      const before = await snapshot(tenant.tenantId);
      await gw.admin(AgentService, tenant.adminKey).revokeAgent({ id: victim.registration.agentId, reason: "rows" });
      const after = await snapshot(tenant.tenantId);
      deltas.push(after.commands - before.commands);
      // The old broadcast bumped every peer's command_seq: no peer row may be written now.
      for (const peer of fleet.slice(1)) expect(after.xmin.get(peer.registration.agentId)).toBe(before.xmin.get(peer.registration.agentId));
      expect(after.xmin.get(victim.registration.agentId)).not.toBe(before.xmin.get(victim.registration.agentId));
    }
    expect(deltas).toEqual([1, 1]);
  });

  it("reaches agents that were offline, until each acks it; one agent's ack is not another's", async () => {
    const tenant = await createTenant(gw, "offline");
    const [victim, a, b] = await fleetIn(tenant.adminKey, 3);
    if (!victim || !a || !b) throw new Error("fleet");
    await gw.admin(AgentService, tenant.adminKey).revokeAgent({ id: victim.registration.agentId, reason: "offline peers" });

    const first = await welcomed(a);
    const notice = await nextCommand(first);
    expect(notice.payload.case === "peerRevoked" && notice.payload.value.agentId).toBe(victim.registration.agentId);
    first.send(ackOf(notice.sequence));
    // The ack is buffered; make sure it is written before the reconnect.
    await waitForAck(a.registration.agentId, notice.sequence);
    first.close();
    await first.ended;

    // b never acked: it still gets it, with the same sequence and id.
    const other = await welcomed(b);
    const again = await nextCommand(other);
    expect(again.commandId).toBe(notice.commandId);
    expect(again.sequence).toBe(notice.sequence);
    other.close();
    await other.ended;

    // a reconnects claiming nothing applied: the acked notice is not redelivered; the next
    // command it gets is a new one.
    const second = await welcomed(a);
    await enqueueForAgents(db(), { tenantId: tenant.tenantId, agentIds: [a.registration.agentId], kind: "peer_revoked", ref: "probe", body: probeBody() });
    await gw.gateway.context.bus.publish("commands_queued", { scope: "tenant", tenantId: tenant.tenantId });
    const probe = await nextCommand(second);
    expect(probe.commandId).not.toBe(notice.commandId);
    expect(probe.sequence).toBeGreaterThan(notice.sequence);
    second.close();
  });

  it("keeps one sequence order with the agent's own commands, and skips what the hello reports applied", async () => {
    const tenant = await createTenant(gw, "order");
    const [agent, v1, v2] = await fleetIn(tenant.adminKey, 3);
    if (!agent || !v1 || !v2) throw new Error("fleet");
    const own = () => enqueueForAgents(db(), { tenantId: tenant.tenantId, agentIds: [agent.registration.agentId], kind: "peer_revoked", ref: "own", body: probeBody() });
    await own();
    await gw.admin(AgentService, tenant.adminKey).revokeAgent({ id: v1.registration.agentId, reason: "order 1" });
    await own();
    await gw.admin(AgentService, tenant.adminKey).revokeAgent({ id: v2.registration.agentId, reason: "order 2" });
    const stream = await welcomed(agent);
    const got = [];
    for (let i = 0; i < 4; i++) got.push(await nextCommand(stream));
    const seqs = got.map((c) => c.sequence);
    expect(seqs).toEqual([...seqs].sort((x, y) => (x < y ? -1 : 1)));
    expect(new Set(seqs).size).toBe(4);
    expect(got.map((c) => (c.payload.case === "peerRevoked" ? c.payload.value.agentId : ""))).toEqual([
      expect.any(String),
      v1.registration.agentId,
      expect.any(String),
      v2.registration.agentId,
    ]);
    stream.close();
    await stream.ended;
    // Hello says everything through the third was applied: only the fourth comes.
    const resumed = await welcomed(agent, got[2]?.sequence ?? 0n);
    expect((await nextCommand(resumed)).commandId).toBe(got[3]?.commandId);
    resumed.close();
  });

  it("is not sent to agents enrolled after it, nor to another tenant", async () => {
    const tenant = await createTenant(gw, "audience");
    const [early, victim, later] = await fleetIn(tenant.adminKey, 3);
    if (!early || !victim || !later) throw new Error("fleet");
    const outsider = await enrollAgent(gw);
    await gw.admin(AgentService, tenant.adminKey).revokeAgent({ id: victim.registration.agentId, reason: "audience" });
    // An agent created after the notice (its row is newer than the notice).
    const [newcomer] = await fleetIn(tenant.adminKey, 1);
    if (!newcomer) throw new Error("newcomer");
    const streams = [await welcomed(newcomer), await welcomed(outsider)];
    // A marker command for each: the first command each one gets must be its marker.
    for (const [i, who] of [newcomer, outsider].entries()) {
      await enqueueForAgents(db(), { tenantId: who.registration.tenantId, agentIds: [who.registration.agentId], kind: "peer_revoked", ref: `marker-${i}`, body: probeBody() });
      await gw.gateway.context.bus.publish("commands_queued", { scope: "tenant", tenantId: who.registration.tenantId });
    }
    for (const stream of streams) {
      const first = await nextCommand(stream);
      expect(first.payload.case === "peerRevoked" && first.payload.value.agentId).toBe(PROBE_AGENT);
      stream.close();
    }
    const earlyStream = await welcomed(early);
    const notice = await nextCommand(earlyStream);
    expect(notice.payload.case === "peerRevoked" && notice.payload.value.agentId).toBe(victim.registration.agentId);
    earlyStream.close();
  });
});

const PROBE_AGENT = "00000000-0000-4000-8000-00000000beef";

function probeBody(): Uint8Array {
  return peerRevokedBody({ id: PROBE_AGENT, identityPublicKey: new Uint8Array(32), revokedAt: new Date() });
}

/** Flushes the hub's ack buffer until the notice's ack row is written (bounded). */
async function waitForAck(agentId: string, sequence: bigint): Promise<void> {
  for (let i = 0; i < 100; i++) {
    await gw.gateway.context.control.flushAcks();
    const row = await db().selectFrom("tenant_command_acks").select("ack_status").where("agent_id", "=", agentId).where("sequence", "=", String(sequence)).executeTakeFirst();
    if (row) {
      expect(row.ack_status).toBe("OK");
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the ack was never written");
}
