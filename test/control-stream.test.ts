import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { GoAwayReason } from "../gen/agentgateway/v1/control_pb.js";
import { gatewayClient, type GatewayClient, handshake } from "../agent/lib/direct.js";
import { enqueueForAgents } from "../server/control/command-store.js";
import { peerRevokedBody } from "../server/control/commands.js";
import { enrollAgent } from "./support/agents.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";
import { ackOf, openStream } from "./support/stream.js";

let gw: TestGateway;
let client: GatewayClient;

beforeAll(async () => {
  gw = await startTestGateway({ handshakeRatePerAgent: "1000/s:1000", streamPingInterval: "300ms" });
  client = gatewayClient(gw.transport);
});

afterAll(async () => {
  await gw?.stop();
});

describe("ControlStream", () => {
  it("answers the hello with a welcome and keeps the stream alive with pings", async () => {
    const agent = await enrollAgent(gw);
    const stream = openStream(client, agent.session);
    const welcome = await stream.next();
    expect(welcome.kind.case).toBe("welcome");
    // Pings are answered by the test stream; after several intervals it is still open.
    await new Promise((r) => setTimeout(r, 1200));
    expect(gw.gateway.context.control.size).toBeGreaterThanOrEqual(1);
    stream.close();
  });

  it("refuses a stream without a session, and one that does not start with a hello", async () => {
    const agent = await enrollAgent(gw);
    const noSession = openStream(client, { token: "nope" });
    const err = await noSession.ended;
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unauthenticated);
    const stream = openStream(client, agent.session);
    await stream.next();
    stream.close();
  });

  it("tells the agent it was revoked, closes the stream, and tells its peers which identity to drop", async () => {
    const victim = await enrollAgent(gw);
    const peer = await enrollAgent(gw);
    const victimStream = openStream(client, victim.session);
    const peerStream = openStream(client, peer.session);
    await victimStream.next();
    await peerStream.next();
    await gw.admin(AgentService).revokeAgent({ id: victim.registration.agentId, reason: "key leaked" });
    const goAway = await victimStream.next();
    expect(goAway.kind.case).toBe("goAway");
    if (goAway.kind.case === "goAway") {
      expect(goAway.kind.value.reason).toBe(GoAwayReason.REVOKED);
      expect(goAway.kind.value.message).toBe("key leaked");
    }
    await victimStream.ended;
    const notice = await peerStream.next();
    expect(notice.kind.case).toBe("command");
    if (notice.kind.case === "command" && notice.kind.value.payload.case === "peerRevoked") {
      expect(notice.kind.value.payload.value.agentId).toBe(victim.registration.agentId);
      expect(notice.kind.value.payload.value.identityPublicKey).toEqual(victim.identity.publicKey);
      peerStream.send(ackOf(notice.kind.value.sequence));
    } else {
      throw new Error(`expected a peerRevoked command, got ${notice.kind.case}`);
    }
    peerStream.close();
  });

  it("redelivers unacknowledged commands after a reconnect, in order, and never an acked one", async () => {
    const agent = await enrollAgent(gw);
    // Queue three notices while the agent is offline.
    for (let i = 0; i < 3; i++) {
      const other = await enrollAgent(gw);
      await gw.admin(AgentService).revokeAgent({ id: other.registration.agentId, reason: `r${i}` });
    }
    const first = openStream(client, agent.session);
    await first.next(); // welcome
    const seqs: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      const m = await first.next();
      if (m.kind.case !== "command") throw new Error(`expected a command, got ${m.kind.case}`);
      seqs.push(m.kind.value.sequence);
    }
    expect(seqs).toEqual([...seqs].sort((a, b) => (a < b ? -1 : 1)));
    first.send(ackOf(seqs[0] ?? 0n));
    await gw.gateway.context.control.flushAcks();
    await new Promise((r) => setTimeout(r, 300));
    await gw.gateway.context.control.flushAcks();
    first.close();
    await first.ended;
    // Reconnect claiming nothing applied: only the two unacked ones come back.
    const second = openStream(client, agent.session);
    await second.next();
    const again: bigint[] = [];
    for (let i = 0; i < 2; i++) {
      const m = await second.next();
      if (m.kind.case === "command") again.push(m.kind.value.sequence);
    }
    expect(again).toEqual(seqs.slice(1));
    second.close();
  });

  it("lets the newest stream win and tells the older one it was superseded", async () => {
    const agent = await enrollAgent(gw);
    const older = openStream(client, agent.session);
    await older.next();
    const newer = openStream(client, agent.session);
    await newer.next();
    const goAway = await older.next();
    expect(goAway.kind.case === "goAway" && goAway.kind.value.reason).toBe(GoAwayReason.SUPERSEDED);
    newer.close();
  });

  it("ends the stream of a session that a new handshake fenced out", async () => {
    const agent = await enrollAgent(gw);
    const stream = openStream(client, agent.session);
    await stream.next();
    await handshake(client, agent.registration.agentId, agent.identity);
    const goAway = await stream.next();
    expect(goAway.kind.case === "goAway" && goAway.kind.value.reason).toBe(GoAwayReason.SESSION_ENDED);
  });
});

describe("ControlStream races", () => {
  it("closes with GoAway REVOKED a stream whose hello arrives after its agent was revoked", async () => {
    const agent = await enrollAgent(gw);
    // The session is cached as valid; the revocation below is committed without the bus
    // announcement reaching this stream (it is not registered yet), as in the real race.
    await gatewayClient(gw.transport).uploadHeartbeat({}, { headers: { authorization: `Bearer ${agent.session.token}` } });
    await gw.gateway.context.database.db.updateTable("agents").set({ state: "REVOKED", revoke_reason: "raced", revoked_at: new Date() }).where("id", "=", agent.registration.agentId).execute();
    const stream = openStream(client, agent.session);
    const messages = [await stream.next(), await stream.next()];
    const goAway = messages.find((m) => m.kind.case === "goAway");
    expect(goAway?.kind.case === "goAway" && goAway.kind.value.reason).toBe(GoAwayReason.REVOKED);
    await stream.ended;
  });

  it("closes with SESSION_ENDED a stream whose session expired before it registered", async () => {
    const agent = await enrollAgent(gw);
    await gatewayClient(gw.transport).uploadHeartbeat({}, { headers: { authorization: `Bearer ${agent.session.token}` } });
    await gw.gateway.context.database.db.updateTable("sessions").set({ expires_at: new Date(Date.now() - 1000) }).where("agent_id", "=", agent.registration.agentId).execute();
    const stream = openStream(client, agent.session);
    const messages = [await stream.next(), await stream.next()];
    const goAway = messages.find((m) => m.kind.case === "goAway");
    expect(goAway?.kind.case === "goAway" && goAway.kind.value.reason).toBe(GoAwayReason.SESSION_ENDED);
    await stream.ended;
  });

  it("delivers every pending command at once when there are more than one page of them", async () => {
    const agent = await enrollAgent(gw);
    const total = 250;
    for (let i = 0; i < total; i++) {
      await enqueueForAgents(gw.gateway.context.database.db, { tenantId: agent.registration.tenantId, agentIds: [agent.registration.agentId], kind: "peer_revoked", ref: `r${i}`, body: peerRevokedBody({ id: crypto.randomUUID(), identityPublicKey: new Uint8Array(32), revokedAt: new Date() }) });
    }
    const stream = openStream(client, agent.session);
    await stream.next(); // welcome
    let commands = 0;
    while (commands < total) {
      const m = await stream.next(5_000);
      if (m.kind.case === "command") commands++;
    }
    expect(commands).toBe(total);
    stream.close();
  });
});
