import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { ReleaseKeyService } from "../gen/agentgateway/admin/v1/release_keys_pb.js";
import { type Rollout, RolloutService, RolloutState } from "../gen/agentgateway/admin/v1/rollouts_pb.js";
import { signReleaseManifest } from "../cli/release.js";
import { gatewayClient, handshake, register, sendHeartbeat } from "../agent/lib/direct.js";
import { classify, EXIT } from "../agent/lib/errors.js";
import { newState, StateStore } from "../agent/lib/state.js";
import { Supervisor, type SupervisorEvent } from "../agent/lib/supervisor.js";
import { createGatewayTransport } from "../client/transport.js";
import { generateKeyPair } from "../client/protocol/ed25519.js";
import { Reason, type ReasonName, reasonOf } from "../client/reasons.js";
import { enrollAgent, mintToken } from "./support/agents.js";
import { expectCode } from "./support/expect-code.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { freePort } from "./support/free-port.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";

/**
 * The agent library's supervisor against a real in-process gateway on real PostgreSQL:
 * commands, a real rollout, session refresh, revocation, and a graceful gateway restart.
 */

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "agw-agent-supervisor-"));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

interface RunningAgent {
  agentId: string;
  supervisor: Supervisor;
  store: StateStore;
  events: SupervisorEvent[];
  result: Promise<{ exitCode: number; reason: string }>;
  version: () => string;
  close(): Promise<void>;
}

/** Enrolls a new identity through the gateway and runs a Supervisor for it. */
async function startAgent(
  gw: TestGateway,
  options: { labels?: Record<string, string>; releaseKeys?: Uint8Array[]; updateCommand?: string; version?: string } = {},
): Promise<RunningAgent> {
  const dir = await mkdtemp(join(root, "agent-"));
  const store = new StateStore(dir);
  await store.init();
  const identity = await store.createIdentity();
  const transport = createGatewayTransport(gw.url, { pins: [] });
  const client = gatewayClient(transport.transport);
  const token = await mintToken(gw, { labels: options.labels ?? {} });
  const name = `sup-${Math.random().toString(36).slice(2, 8)}`;
  const reg = await register(client, { token, identity, name });
  const state = newState({
    server: gw.url,
    agentId: reg.agentId,
    tenantId: reg.tenantId,
    name,
    labels: {},
    verificationCode: reg.verificationCode,
    tls: { pins: [] },
    releaseKeys: [],
  });
  await store.save(state);
  let version = options.version ?? "1.0.0";
  const events: SupervisorEvent[] = [];
  const supervisor = new Supervisor({
    client,
    identity,
    store,
    state,
    backoff: { initialMs: 200, maxMs: 1000, floorMs: 50 },
    healthyAfterMs: 1000,
    hostInfo: () => ({ hostname: "test", os: "linux", arch: "x64", agentVersion: version, labels: {} }),
    version: () => version,
    commands: {
      releaseKeys: options.releaseKeys ?? [],
      ...(options.updateCommand ? { updateCommand: options.updateCommand } : {}),
      updateTimeoutMs: 10_000,
      stateDir: dir,
      installedVersion: async (hookSaid, manifestVersion) => {
        version = hookSaid ?? manifestVersion;
        return version;
      },
    },
    logger: pino({ level: process.env.AGW_TEST_LOG_LEVEL ?? "silent" }),
    observer: (e) => events.push(e),
  });
  const result = supervisor.run();
  return {
    agentId: reg.agentId,
    supervisor,
    store,
    events,
    result,
    version: () => version,
    close: async () => {
      await supervisor.stop(500);
      transport.close();
    },
  };
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const connections = (a: RunningAgent) => a.events.filter((e) => e.type === "connected").length;

describe("agent supervisor on a real gateway", () => {
  let gw: TestGateway;
  const releaseKey = generateKeyPair();

  beforeAll(async () => {
    gw = await startTestGateway({ heartbeatFlushInterval: "100ms", handshakeRatePerAgent: "1000/s:1000" });
    await gw.admin(ReleaseKeyService).registerReleaseKey({ name: "agent-suite", publicKey: releaseKey.publicKey });
  }, 60_000);

  afterAll(async () => {
    await gw?.stop();
  });

  it("acks a peer revocation after recording it, and the gateway stops redelivering it", async () => {
    const agent = await startAgent(gw);
    await until("connected", () => connections(agent) > 0);
    const peer = await enrollAgent(gw);
    await gw.admin(AgentService).revokeAgent({ id: peer.registration.agentId, reason: "peer test" });
    const state = await until("the peer notice", async () => {
      const s = await agent.store.load();
      return s?.revokedPeers.some((p) => p.agentId === peer.registration.agentId) ? s : undefined;
    });
    expect(BigInt(state.lastAppliedSequence)).toBeGreaterThan(0n);
    await until("the ack recorded", async () => {
      // A peer revocation is one tenant-wide row; each agent's ack is its own row.
      const rows = await gw.gateway.context.database.db
        .selectFrom("tenant_command_acks")
        .select(["acked_at", "ack_status"])
        .where("agent_id", "=", agent.agentId)
        .where("sequence", "=", state.lastAppliedSequence)
        .execute();
      return rows.length === 1 && rows.every((r) => r.ack_status === "OK") ? true : undefined;
    });
    await agent.close();
  });

  it("applies a real rollout: verifies the manifest, runs the hook, reports the new version, and the wave completes", async () => {
    const out = join(root, `hook-${Date.now()}.json`);
    const agent = await startAgent(gw, { labels: { suite: "agent-rollout" }, releaseKeys: [releaseKey.publicKey], updateCommand: `cat > ${out}; echo 2.0.0` });
    await until("connected", () => connections(agent) > 0);
    const manifest = signReleaseManifest(
      {
        version: "2.0.0",
        artifactUrl: "https://releases.example.invalid/agw-agent-2.0.0.tgz",
        artifactSha256: new Uint8Array(32).fill(9),
        artifactSize: 42n,
        notes: "",
      },
      releaseKey.privateKey,
    );
    const rollouts = gw.admin(RolloutService);
    const { rollout } = await rollouts.createRollout({
      spec: {
        manifest,
        targetSelector: { suite: "agent-rollout" },
        waves: [{ name: "all", cumulativePercent: 100, failureBudget: 0, verifyWindow: durationFromMs(15_000) }],
      },
    });
    await rollouts.startRollout({ id: rollout?.id ?? "" });
    const done: Rollout = await until("rollout completed", async () => {
      const r = (await rollouts.getRollout({ id: rollout?.id ?? "" })).rollout;
      return r && (r.state === RolloutState.COMPLETED || r.state === RolloutState.HALTED) ? r : undefined;
    }).finally(() => rollouts.cancelRollout({ id: rollout?.id ?? "", reason: "test over" }).catch(() => {}));
    expect(done.state, `${done.haltReason} ${JSON.stringify(done.failures)}`).toBe(RolloutState.COMPLETED);
    expect(agent.version()).toBe("2.0.0");
    expect(JSON.parse(readFileSync(out, "utf8"))).toMatchObject({ version: "2.0.0", rolloutId: rollout?.id });
    await agent.close();
  });

  it("refuses a rollout signed by a key it did not pin, without running the hook", async () => {
    const marker = join(root, `never-${Date.now()}`);
    const other = generateKeyPair();
    await gw.admin(ReleaseKeyService).registerReleaseKey({ name: "not-pinned-by-agent", publicKey: other.publicKey });
    const agent = await startAgent(gw, { labels: { suite: "agent-unpinned" }, releaseKeys: [releaseKey.publicKey], updateCommand: `touch ${marker}` });
    await until("connected", () => connections(agent) > 0);
    const manifest = signReleaseManifest(
      { version: "3.0.0", artifactUrl: "https://releases.example.invalid/x.tgz", artifactSha256: new Uint8Array(32), artifactSize: 1n, notes: "" },
      other.privateKey,
    );
    const rollouts = gw.admin(RolloutService);
    const { rollout } = await rollouts.createRollout({
      spec: {
        manifest,
        targetSelector: { suite: "agent-unpinned" },
        waves: [{ name: "all", cumulativePercent: 100, failureBudget: 0, verifyWindow: durationFromMs(15_000) }],
      },
    });
    await rollouts.startRollout({ id: rollout?.id ?? "" });
    const halted = await until("rollout halted", async () => {
      const r = (await rollouts.getRollout({ id: rollout?.id ?? "" })).rollout;
      return r && r.state === RolloutState.HALTED ? r : undefined;
    }).finally(() => rollouts.cancelRollout({ id: rollout?.id ?? "", reason: "test over" }).catch(() => {}));
    expect(halted.failures[0]?.reason).toMatch(/not pinned/);
    expect(existsSync(marker)).toBe(false);
    expect(agent.version()).toBe("1.0.0");
    await agent.close();
  });

  it("decides every refusal it tells apart from the gateway's ErrorInfo reason, not its message", async () => {
    const client = gatewayClient(gw.transport);
    const agents = gw.admin(AgentService);
    const cases: Array<{ state: string; approval: boolean; to(id: string): Promise<unknown>; reason: ReasonName; verdict: string }> = [
      { state: "pending approval", approval: true, to: async () => {}, reason: Reason.AWAITING_APPROVAL, verdict: "awaiting-approval" },
      {
        state: "rejected",
        approval: true,
        to: (id) => agents.rejectAgent({ id, reason: "unknown host" }),
        reason: Reason.AGENT_REJECTED,
        verdict: "identity-unusable",
      },
      {
        state: "retired",
        approval: false,
        to: (id) => agents.retireAgent({ id, reason: "decommissioned" }),
        reason: Reason.AGENT_RETIRED,
        verdict: "identity-unusable",
      },
      { state: "revoked", approval: false, to: (id) => agents.revokeAgent({ id, reason: "stolen" }), reason: Reason.AGENT_REVOKED, verdict: "revoked" },
    ];
    for (const c of cases) {
      const identity = generateKeyPair();
      const reg = await register(client, { token: await mintToken(gw, { requiresApproval: c.approval }), identity, name: `reason-${c.reason.toLowerCase()}` });
      await c.to(reg.agentId);
      const err = await handshake(client, reg.agentId, identity).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(reasonOf(err), c.state).toBe(c.reason);
      expect(classify(err).kind, c.state).toBe(c.verdict);
    }
    // A post-handshake RPC of a revoked agent carries the reason too.
    const live = await enrollAgent(gw);
    await agents.revokeAgent({ id: live.registration.agentId, reason: "stolen" });
    const denied = await sendHeartbeat(client, live.session, {}).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(reasonOf(denied)).toBe(Reason.AGENT_REVOKED);
    expect(classify(denied).kind).toBe("revoked");
  });

  /** Runs a one-wave rollout of `manifest` to the agents labelled `suite` until it completes or halts. */
  async function rollOut(manifest: ReturnType<typeof signReleaseManifest>, suite: string, beforeStart?: () => Promise<void>): Promise<Rollout> {
    const rollouts = gw.admin(RolloutService);
    const { rollout } = await rollouts.createRollout({
      spec: {
        manifest,
        targetSelector: { suite },
        waves: [{ name: "all", cumulativePercent: 100, failureBudget: 0, verifyWindow: durationFromMs(15_000) }],
      },
    });
    const id = rollout?.id ?? "";
    try {
      await beforeStart?.();
      await rollouts.startRollout({ id });
      return await until("rollout finished", async () => {
        const r = (await rollouts.getRollout({ id })).rollout;
        return r && (r.state === RolloutState.COMPLETED || r.state === RolloutState.HALTED) ? r : undefined;
      });
    } finally {
      await rollouts.cancelRollout({ id, reason: "test over" }).catch(() => {});
    }
  }

  const release = (version: string, extra: { allowDowngrade?: boolean; expiresAt?: Date } = {}) =>
    signReleaseManifest(
      {
        version,
        artifactUrl: `https://releases.example.invalid/agw-agent-${version}.tgz`,
        artifactSha256: new Uint8Array(32).fill(3),
        artifactSize: 7n,
        notes: "",
        ...extra,
      },
      releaseKey.privateKey,
    );

  it("refuses an old signed manifest over a newer version (DOWNGRADE_REFUSED), and installs it only when signed as a deliberate downgrade", async () => {
    const marker = join(root, `downgrade-${Date.now()}`);
    const agent = await startAgent(gw, {
      labels: { suite: "agent-downgrade" },
      releaseKeys: [releaseKey.publicKey],
      updateCommand: `echo "$AGW_ALLOW_DOWNGRADE" > ${marker}; echo 1.5.0`,
      version: "2.0.0",
    });
    await until("connected", () => connections(agent) > 0);
    // What a compromised gateway can do: replay a release that was genuinely signed once.
    const replayed = await rollOut(release("1.5.0"), "agent-downgrade");
    expect(replayed.state).toBe(RolloutState.HALTED);
    expect(replayed.failures[0]?.reason).toBe(
      "DOWNGRADE_REFUSED: release 1.5.0 is not newer than the running 2.0.0; a downgrade needs a manifest signed with allow_downgrade",
    );
    expect(existsSync(marker)).toBe(false);
    expect(agent.version()).toBe("2.0.0");
    const deliberate = await rollOut(release("1.5.0", { allowDowngrade: true }), "agent-downgrade");
    expect(deliberate.state, `${deliberate.haltReason} ${JSON.stringify(deliberate.failures)}`).toBe(RolloutState.COMPLETED);
    expect(agent.version()).toBe("1.5.0");
    expect(readFileSync(marker, "utf8").trim()).toBe("1");
    await agent.close();
  });

  it("refuses an expired manifest: the gateway when the rollout is created, the agent when it expired on the way", async () => {
    await expectCode(
      gw
        .admin(RolloutService)
        .createRollout({ spec: { manifest: release("9.0.0", { expiresAt: new Date(Date.now() - 1000) }), targetSelector: { suite: "none" } } }),
      Code.InvalidArgument,
      /expires_at/,
    );
    const marker = join(root, `expired-${Date.now()}`);
    const agent = await startAgent(gw, { labels: { suite: "agent-expired" }, releaseKeys: [releaseKey.publicKey], updateCommand: `touch ${marker}` });
    await until("connected", () => connections(agent) > 0);
    const expiresAt = new Date(Date.now() + 2500);
    const halted = await rollOut(release("4.0.0", { expiresAt }), "agent-expired", async () => {
      await new Promise((r) => setTimeout(r, expiresAt.getTime() - Date.now() + 100));
    });
    expect(halted.state).toBe(RolloutState.HALTED);
    expect(halted.failures[0]?.reason).toBe(`MANIFEST_EXPIRED: manifest for 4.0.0 expired at ${expiresAt.toISOString()}`);
    expect(existsSync(marker)).toBe(false);
    await agent.close();
  });

  it("stops with exit 78 and the operator's reason when revoked, and marks the state", async () => {
    const agent = await startAgent(gw);
    await until("connected", () => connections(agent) > 0);
    await gw.admin(AgentService).revokeAgent({ id: agent.agentId, reason: "stolen laptop" });
    const result = await agent.result;
    expect(result).toEqual({ exitCode: EXIT.REVOKED, reason: "stolen laptop" });
    expect((await agent.store.load())?.revoked?.reason).toBe("stolen laptop");
    expect(await agent.store.loadSession()).toBeUndefined();
    await agent.close();
  });
});

describe("session refresh", () => {
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startTestGateway({ sessionTtl: "6s", handshakeRatePerAgent: "1000/s:1000" });
  }, 60_000);

  afterAll(async () => {
    await gw?.stop();
  });

  it("handshakes again at about two thirds of the lifetime and reopens the stream without a failure", async () => {
    const agent = await startAgent(gw);
    await until("two refreshes", () => agent.events.filter((e) => e.type === "handshake").length >= 3, 20_000);
    await until("reconnected", () => connections(agent) >= 3);
    const disconnects = agent.events.filter((e): e is Extract<SupervisorEvent, { type: "disconnected" }> => e.type === "disconnected");
    for (const d of disconnects) {
      expect(d.delayMs).toBe(0);
      expect(d.reason).toMatch(/session (refreshed|replaced)/);
    }
    await agent.close();
    // One handshake per stream: the refresh never races into a second, wasted one.
    const handshakes = agent.events.filter((e) => e.type === "handshake").length;
    expect(handshakes - connections(agent)).toBeGreaterThanOrEqual(0);
    expect(handshakes - connections(agent)).toBeLessThanOrEqual(1);
  }, 30_000);
});

describe("graceful gateway restart", () => {
  let database: TestDatabase;
  let port: number;

  beforeAll(async () => {
    database = await createTestDatabase();
    port = await freePort();
  });

  afterAll(async () => {
    await database?.drop();
  });

  it("follows the DRAIN GoAway's reconnect hint, backs off while the gateway is down, and reconnects when it is back", async () => {
    const settings = { listen: `127.0.0.1:${port}`, drainSpread: "400ms", handshakeRatePerAgent: "1000/s:1000" };
    let gw = await startTestGateway(settings, database);
    const agent = await startAgent(gw);
    await until("connected", () => connections(agent) > 0);
    await gw.stop();
    await until("disconnected", () => agent.events.some((e) => e.type === "disconnected"));
    const first = agent.events.find((e): e is Extract<SupervisorEvent, { type: "disconnected" }> => e.type === "disconnected");
    expect(first?.reason).toMatch(/DRAIN/);
    expect(first?.delayMs).toBeLessThanOrEqual(400 + 200);
    await new Promise((r) => setTimeout(r, 1500));
    const attemptsWhileDown = agent.events.filter((e) => e.type === "attempt").length;
    // Backoff (200 ms doubling to 1 s): a handful of attempts in 1.5 s, never a tight loop.
    expect(attemptsWhileDown).toBeLessThan(15);
    gw = await startTestGateway(settings, database);
    await until("reconnected", () => connections(agent) >= 2, 20_000);
    await agent.close();
    await gw.stop();
  }, 60_000);
});
