// What a halt does to directives not applied yet (issue 16): the halt withdraws the current
// wave's unacknowledged directives in its transaction, every replica's hub drops the ones it
// still holds in memory for a stream, the withdrawn ones are listed as WITHDRAWN with their
// reason, their members are not failures, and resume directs them again so the rollout can
// complete. The in-memory case drives the running gateway's own hub with sinks nobody reads
// (the state a slow transport leaves a stream in), on the real database and bus.
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type AgentCommand, AgentCommandState, AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { ReleaseKeyService } from "../gen/agentgateway/admin/v1/release_keys_pb.js";
import { type Rollout, RolloutService, RolloutState, WaveState } from "../gen/agentgateway/admin/v1/rollouts_pb.js";
import { gatewayClient } from "../agent/lib/direct.js";
import { signReleaseManifest } from "../cli/release.js";
import { generateKeyPair } from "../client/protocol/ed25519.js";
import { type AgentConnection, type Outgoing, QueueSink } from "../server/control/connection.js";
import { enrollAgent, type EnrolledAgent } from "./support/agents.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";
import { SimAgent } from "./support/sim-agent.js";
import { ackOf, openStream } from "./support/stream.js";

let gw: TestGateway;
const releaseKey = generateKeyPair();
const pinned = { pinnedReleaseKeys: [releaseKey.publicKey] };

const manifest = (version: string) =>
  signReleaseManifest({ version, artifactUrl: `https://releases.example.invalid/${version}.tgz`, artifactSha256: new Uint8Array(32).fill(5), artifactSize: 1n, notes: "" }, releaseKey.privateKey);

const oneWave = [{ name: "all", cumulativePercent: 100, failureBudget: 0, verifyWindow: durationFromMs(60_000) }];

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function rolloutOf(id: string): Promise<Rollout> {
  const { rollout } = await gw.admin(RolloutService).getRollout({ id });
  if (!rollout) throw new Error(`no rollout ${id}`);
  return rollout;
}

async function rolloutCommands(agentId: string, rolloutId: string): Promise<AgentCommand[]> {
  const { commands } = await gw.admin(AgentService).listAgentCommands({ agentId });
  return commands.filter((c) => c.kind === "rollout" && c.ref === rolloutId);
}

/** Registers a stream for the agent straight on a replica's hub, with a sink nobody reads. */
async function unreadStream(replica: TestGateway, agent: EnrolledAgent): Promise<{ conn: AgentConnection; sink: QueueSink }> {
  const { db } = replica.gateway.context.database;
  const session = await db.selectFrom("sessions").select(["id", "tenant_id", "expires_at"]).where("agent_id", "=", agent.registration.agentId).executeTakeFirstOrThrow();
  const sink = new QueueSink();
  const conn = await replica.gateway.context.control.open({ agentId: agent.registration.agentId, tenantId: session.tenant_id, sessionId: session.id, expiresAt: session.expires_at }, 0, sink);
  return { conn, sink };
}

/** What the sink holds now (it is ended first, so reading stops at the end of what it has). */
async function drain(sink: QueueSink): Promise<Outgoing[]> {
  sink.end();
  const out: Outgoing[] = [];
  for await (const message of sink.messages()) out.push(message);
  return out;
}

const directivesIn = (messages: Outgoing[]) => messages.filter((m) => m.kind?.case === "command" && m.kind.value.payload?.case === "rollout");

const agents: SimAgent[] = [];

beforeAll(async () => {
  gw = await startTestGateway({ rolloutVerifyInterval: "200ms", heartbeatFlushInterval: "100ms", handshakeRatePerAgent: "1000/s:1000", registerRatePerSource: "1000/s:1000" });
  await gw.admin(ReleaseKeyService).registerReleaseKey({ name: "halt-key", publicKey: releaseKey.publicKey });
  for (const name of ["halt-a", "halt-b"]) agents.push(await SimAgent.start(gw, pinned, name));
}, 60_000);

afterAll(async () => {
  for (const a of agents) a.disconnect();
  await gw?.stop();
});

// One rollout per tenant may run: one a failed test leaves behind is cancelled, so the next test
// shows its own result.
const started: string[] = [];
afterEach(async () => {
  for (const id of started.splice(0)) await gw.admin(RolloutService).cancelRollout({ id, reason: "test over" }).catch(() => {});
});

describe("an operator's halt", () => {
  it("withdraws the directives not acknowledged yet: listed as WITHDRAWN, not failures, never sent on a later stream; resume directs them again and the rollout completes", async () => {
    const rollouts = gw.admin(RolloutService);
    const [a, b] = agents;
    if (!a || !b) throw new Error("no agents");
    // Both offline: their directives wait in the table.
    const { rollout } = await rollouts.createRollout({ spec: { manifest: manifest("2.0.0"), waves: oneWave } });
    const id = rollout?.id ?? "";
    started.push(id);
    await rollouts.startRollout({ id });
    expect((await rolloutCommands(a.id, id)).map((c) => AgentCommandState[c.state])).toEqual(["PENDING"]);

    await rollouts.haltRollout({ id, reason: "bad dashboards" });
    for (const agent of [a, b]) {
      const listed = await rolloutCommands(agent.id, id);
      expect(listed.map((c) => [AgentCommandState[c.state], c.ackReason])).toEqual([["WITHDRAWN", "withdrawn: rollout halted"]]);
      expect(listed[0]?.ackedAt).toBeDefined();
    }
    const pendingOnly = await gw.admin(AgentService).listAgentCommands({ agentId: a.id, pendingOnly: true });
    expect(pendingOnly.commands.filter((c) => c.ref === id)).toEqual([]);

    // Several verifier passes later the members are still waiting, not failed.
    await new Promise((r) => setTimeout(r, 600));
    const halted = await rolloutOf(id);
    expect(RolloutState[halted.state]).toBe("HALTED");
    expect(halted.waves[0]).toMatchObject({ failed: 0, pending: 2 });
    expect(halted.failures).toEqual([]);

    // A stream opened after the halt is not sent the directive: the first command it gets is a
    // newer one (a peer revocation queued now), which would come second if the directive were
    // still pending.
    const bystander = await enrollAgent(gw, "halt-bystander");
    const stream = openStream(gatewayClient(gw.transport), a.enrolled.session);
    expect((await stream.next()).kind.case).toBe("welcome");
    await gw.admin(AgentService).revokeAgent({ id: bystander.registration.agentId, reason: "test: a newer command" });
    const first = await stream.next();
    expect(first.kind.case === "command" && first.kind.value.payload.case).toBe("peerRevoked");
    if (first.kind.case === "command") stream.send(ackOf(first.kind.value.sequence));
    stream.close();
    await stream.ended;

    await rollouts.resumeRollout({ id, note: "dashboards fixed" });
    for (const agent of [a, b]) {
      const listed = await rolloutCommands(agent.id, id);
      expect(listed.map((c) => AgentCommandState[c.state])).toEqual(["PENDING", "WITHDRAWN"]);
    }
    await Promise.all([a.connect(), b.connect()]);
    const done = await until("the resumed rollout to complete", async () => {
      const r = await rolloutOf(id);
      return r.state === RolloutState.COMPLETED ? r : undefined;
    });
    expect(done.waves[0]).toMatchObject({ succeeded: 2, failed: 0 });
    expect(a.version).toBe("2.0.0");
    expect(b.version).toBe("2.0.0");
  });
});

describe("the verifier's halt", () => {
  it("withdraws the rest of the wave's directives when a failure exceeds the budget; only the real failure counts; resume directs the withdrawn again; cancel withdraws", async () => {
    const rollouts = gw.admin(RolloutService);
    const failing = await SimAgent.start(gw, { ...pinned, failInstall: true }, "halt-failing");
    const offline = await SimAgent.start(gw, pinned, "halt-offline");
    await failing.connect();
    const { rollout } = await rollouts.createRollout({ spec: { manifest: manifest("3.0.0"), waves: oneWave } });
    const id = rollout?.id ?? "";
    started.push(id);
    await rollouts.startRollout({ id });
    const halted = await until("the verifier to halt the rollout", async () => {
      const r = await rolloutOf(id);
      return r.state === RolloutState.HALTED ? r : undefined;
    });
    failing.disconnect();
    expect(halted.haltReason).toContain(failing.id);
    expect(halted.waves[0]?.failed).toBe(1);
    expect(halted.failures.map((f) => f.agentId)).toEqual([failing.id]);
    expect((await rolloutCommands(offline.id, id)).map((c) => [AgentCommandState[c.state], c.ackReason])).toEqual([["WITHDRAWN", "withdrawn: rollout halted"]]);
    // The failing agent had reported: its directive was not withdrawn, and its own ack stands.
    const own = await until("the failing agent's own ack", async () => {
      const [command] = await rolloutCommands(failing.id, id);
      return command?.state === AgentCommandState.FAILED ? command : undefined;
    });
    expect(own.ackReason).toBe("update hook failed");

    await rollouts.resumeRollout({ id, note: "that host is being replaced" });
    expect((await rolloutCommands(offline.id, id)).map((c) => AgentCommandState[c.state])).toEqual(["PENDING", "WITHDRAWN"]);
    expect(WaveState[(await rolloutOf(id)).waves[0]?.state ?? 0]).toBe("IN_PROGRESS");

    await rollouts.cancelRollout({ id, reason: "test over" });
    expect((await rolloutCommands(offline.id, id)).map((c) => [AgentCommandState[c.state], c.ackReason])).toEqual([
      ["WITHDRAWN", "withdrawn: rollout cancelled"],
      ["WITHDRAWN", "withdrawn: rollout halted"],
    ]);
    for (const a of agents) a.disconnect();
  });
});

describe("directives already in a stream's memory", () => {
  it("are dropped by the halt on every replica before the stream's transport takes them, whether queued in the sink or held while the stream registers", async () => {
    const rollouts = gw.admin(RolloutService);
    const queued = await enrollAgent(gw, "halt-queued");
    const held = await enrollAgent(gw, "halt-held");
    const { rollout } = await rollouts.createRollout({ spec: { manifest: manifest("4.0.0"), waves: oneWave } });
    const id = rollout?.id ?? "";
    started.push(id);
    // The queued stream is on another replica of the same database: the halt reaches it only
    // through the bus.
    const other = await startTestGateway({ rolloutVerifyInterval: "1h" }, gw.database);
    const q = await unreadStream(other, queued);
    q.conn.start(other.gateway.context.control.welcome());
    const h = await unreadStream(gw, held); // not started: what the hub sends it is held
    const droppedBefore = { here: gw.gateway.context.control.withdrawStats.dropped, there: other.gateway.context.control.withdrawStats.dropped };

    await rollouts.startRollout({ id });
    for (const [agent, conn] of [
      [queued, q.conn],
      [held, h.conn],
    ] as const) {
      const [command] = await rolloutCommands(agent.registration.agentId, id);
      const sequence = Number(command?.sequence ?? 0);
      expect(sequence).toBeGreaterThan(0);
      await until("the hub to hand the directive to the stream", () => conn.lastSent >= sequence);
    }
    expect(q.sink.size).toBe(2); // the welcome and the directive, not taken by any transport

    await rollouts.haltRollout({ id, reason: "stop now" });
    await until("the withdrawal notice to reach both hubs", () => gw.gateway.context.control.withdrawStats.dropped > droppedBefore.here && other.gateway.context.control.withdrawStats.dropped > droppedBefore.there);
    const fromQueue = await drain(q.sink);
    expect(fromQueue.map((m) => m.kind?.case)).toEqual(["welcome"]);
    h.conn.start(gw.gateway.context.control.welcome());
    const fromHeld = await drain(h.sink);
    expect(fromHeld.map((m) => m.kind?.case)).toEqual(["welcome"]);
    expect(directivesIn([...fromQueue, ...fromHeld])).toEqual([]);
    other.gateway.context.control.remove(q.conn);
    gw.gateway.context.control.remove(h.conn);
    await other.stop();
    await rollouts.cancelRollout({ id, reason: "test over" });
  });
});
