// AgentService.ListAgentCommands and ListAuditEvents' target filter: what an agent's page shows
// of its queued commands and its own audit records — paged, tenant-scoped, and nothing else.
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gatewayClient } from "../agent/lib/direct.js";
import { AgentCommandState, AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { ApiKeyService, Role } from "../gen/agentgateway/admin/v1/api_keys_pb.js";
import { AuditService } from "../gen/agentgateway/admin/v1/audit_pb.js";
import { AckStatus } from "../gen/agentgateway/v1/control_pb.js";
import { createTenant, type EnrolledAgent, enrollAgent } from "./support/agents.js";
import { expectCode } from "./support/expect-code.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";
import { openStream } from "./support/stream.js";

let gw: TestGateway;
let agent: EnrolledAgent;
const revoked: string[] = [];

beforeAll(async () => {
  gw = await startTestGateway({ registerRatePerSource: "1000/s:1000" });
  agent = await enrollAgent(gw, "watched");
  // Three peers revoked while `agent` is offline: three peer_revoked commands wait for it.
  for (let i = 0; i < 3; i++) {
    const peer = await enrollAgent(gw, `peer-${i}`);
    await gw.admin(AgentService).revokeAgent({ id: peer.registration.agentId, reason: `leak ${i}` });
    revoked.push(peer.registration.agentId);
  }
}, 60_000);

afterAll(async () => {
  await gw?.stop();
});

const agents = () => gw.admin(AgentService);

describe("ListAgentCommands", () => {
  it("lists the commands queued for an agent, newest first, with what each says", async () => {
    const { commands, nextPageToken } = await agents().listAgentCommands({ agentId: agent.registration.agentId });
    expect(nextPageToken).toBe("");
    expect(commands.map((c) => c.kind)).toEqual(["peer_revoked", "peer_revoked", "peer_revoked"]);
    expect(commands.map((c) => c.state)).toEqual([AgentCommandState.PENDING, AgentCommandState.PENDING, AgentCommandState.PENDING]);
    const seqs = commands.map((c) => c.sequence);
    expect(seqs).toEqual([...seqs].sort((a, b) => (a > b ? -1 : 1)));
    const about = commands.map((c) => (c.command?.payload.case === "peerRevoked" ? c.command.payload.value.agentId : ""));
    expect(about).toEqual([...revoked].reverse());
    expect(commands.every((c) => c.createdAt && !c.ackedAt && c.commandId === c.command?.commandId && c.sequence === c.command?.sequence)).toBe(true);
    // The revoked agents themselves were not told about their own revocation.
    expect((await agents().listAgentCommands({ agentId: revoked[0] ?? "" })).commands.map((c) => c.command?.payload.value)).not.toContainEqual(
      expect.objectContaining({ agentId: revoked[0] }),
    );
  });

  it("pages with opaque tokens, and refuses a tampered token or one of the other listing", async () => {
    const id = agent.registration.agentId;
    const first = await agents().listAgentCommands({ agentId: id, pageSize: 2 });
    expect(first.commands).toHaveLength(2);
    expect(first.nextPageToken).not.toBe("");
    const second = await agents().listAgentCommands({ agentId: id, pageSize: 2, pageToken: first.nextPageToken });
    expect(second.commands).toHaveLength(1);
    expect(second.nextPageToken).toBe("");
    const all = await agents().listAgentCommands({ agentId: id });
    expect([...first.commands, ...second.commands].map((c) => c.commandId)).toEqual(all.commands.map((c) => c.commandId));

    await expectCode(agents().listAgentCommands({ agentId: id, pageToken: "not-a-token" }), Code.InvalidArgument, /page_token/);
    const forged = Buffer.from(JSON.stringify({ s: "1; drop table agents", p: 0 })).toString("base64url");
    await expectCode(agents().listAgentCommands({ agentId: id, pageToken: forged }), Code.InvalidArgument, /page_token/);
    // A token of the full listing used with pending_only would skip or repeat commands.
    await expectCode(agents().listAgentCommands({ agentId: id, pendingOnly: true, pageToken: first.nextPageToken }), Code.InvalidArgument, /page_token/);
    await expectCode(agents().listAgentCommands({ agentId: id, pageSize: 501 }), Code.InvalidArgument);
    await expectCode(agents().listAgentCommands({ agentId: "web-1" }), Code.InvalidArgument);
  });

  it("shows acknowledgements: pending_only drops what the agent acked, and the reason is kept", async () => {
    const id = agent.registration.agentId;
    const stream = openStream(gatewayClient(gw.transport), agent.session);
    try {
      await stream.next(); // welcome
      const delivered: bigint[] = [];
      for (let i = 0; i < 3; i++) {
        const m = await stream.next();
        if (m.kind.case !== "command") throw new Error(`expected a command, got ${m.kind.case}`);
        delivered.push(m.kind.value.sequence);
      }
      const [oldest, middle] = delivered;
      stream.send({ kind: { case: "ack", value: { sequence: oldest ?? 0n, status: AckStatus.OK, reason: "" } } });
      stream.send({ kind: { case: "ack", value: { sequence: middle ?? 0n, status: AckStatus.FAILED, reason: "peer cache is read-only" } } });
      let pending = await agents().listAgentCommands({ agentId: id, pendingOnly: true });
      for (let i = 0; i < 100 && pending.commands.length !== 1; i++) {
        await gw.gateway.context.control.flushAcks();
        await new Promise((r) => setTimeout(r, 50));
        pending = await agents().listAgentCommands({ agentId: id, pendingOnly: true });
      }
      expect(pending.commands.map((c) => c.sequence)).toEqual([delivered[2]]);
      const all = await agents().listAgentCommands({ agentId: id });
      const bySeq = new Map(all.commands.map((c) => [c.sequence, c]));
      expect(bySeq.get(oldest ?? 0n)?.state).toBe(AgentCommandState.APPLIED);
      expect(bySeq.get(oldest ?? 0n)?.ackedAt).toBeDefined();
      expect(bySeq.get(middle ?? 0n)?.state).toBe(AgentCommandState.FAILED);
      expect(bySeq.get(middle ?? 0n)?.ackReason).toBe("peer cache is read-only");
    } finally {
      stream.close();
    }
  });

  it("is readable by a viewer, and another tenant's agent is NOT_FOUND like a missing one", async () => {
    const { secret } = await gw.admin(ApiKeyService).createApiKey({ name: "viewer", role: Role.VIEWER });
    const asViewer = await gw.admin(AgentService, secret).listAgentCommands({ agentId: agent.registration.agentId });
    expect(asViewer.commands).toHaveLength(3);
    const other = await createTenant(gw, "other");
    await expectCode(gw.admin(AgentService, other.adminKey).listAgentCommands({ agentId: agent.registration.agentId }), Code.NotFound);
    await expectCode(agents().listAgentCommands({ agentId: crypto.randomUUID() }), Code.NotFound);
  });
});

describe("ListAuditEvents by target", () => {
  it("returns only the records about that target, in chain order, paged", async () => {
    const target = `agent:${revoked[1]}`;
    const { events } = await gw.admin(AuditService).listAuditEvents({ target });
    expect(events.map((e) => e.action)).toEqual(["agent.registered", "agent.revoked"]);
    expect(events.every((e) => e.target === target)).toBe(true);
    const page = await gw.admin(AuditService).listAuditEvents({ target, pageSize: 1 });
    expect(page.events.map((e) => e.seq)).toEqual([events[0]?.seq]);
    const rest = await gw.admin(AuditService).listAuditEvents({ target, afterSeq: page.nextAfterSeq });
    expect(rest.events.map((e) => e.seq)).toEqual([events[1]?.seq]);
    // With an action too, both must match.
    const both = await gw.admin(AuditService).listAuditEvents({ target, action: "agent.revoked" });
    expect(both.events.map((e) => e.action)).toEqual(["agent.revoked"]);
    expect((await gw.admin(AuditService).listAuditEvents({ target: `agent:${crypto.randomUUID()}` })).events).toEqual([]);
  });

  it("refuses a malformed target, and another tenant sees none of these records", async () => {
    for (const target of ["agent", "agent:", "agent:x y", "AGENT:1", "agent:%", `agent:${"a".repeat(200)}`]) {
      await expectCode(gw.admin(AuditService).listAuditEvents({ target }), Code.InvalidArgument);
    }
    const other = await createTenant(gw, "other-audit");
    expect((await gw.admin(AuditService, other.adminKey).listAuditEvents({ target: `agent:${revoked[1]}` })).events).toEqual([]);
  });
});
