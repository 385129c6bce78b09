import { Code } from "@connectrpc/connect";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { EnrollmentTokenService } from "../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { gatewayClient, register } from "../agent/lib/direct.js";
import { newIdentity } from "./support/agents.js";
import { ReleaseKeyService } from "../gen/agentgateway/admin/v1/release_keys_pb.js";
import { type Rollout, RolloutService, RolloutState, WaveState } from "../gen/agentgateway/admin/v1/rollouts_pb.js";
import { SignedReleaseManifestSchema } from "../gen/agentgateway/v1/release_pb.js";
import { signReleaseManifest } from "../cli/release.js";
import { generateKeyPair } from "../client/protocol/ed25519.js";
import { expectCode } from "./support/expect-code.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";
import { SimAgent } from "./support/sim-agent.js";

let gw: TestGateway;
const releaseKey = generateKeyPair();
const rogueKey = generateKeyPair();

const manifest = (version: string, key = releaseKey.privateKey) =>
  signReleaseManifest({ version, artifactUrl: `https://releases.example.invalid/agent-${version}.tgz`, artifactSha256: new Uint8Array(32).fill(7), artifactSize: 1234n, notes: "" }, key);

const threeWaves = (verifyMs: number, budget = 0) => [
  { name: "canary", cumulativePercent: 10, failureBudget: budget, verifyWindow: durationFromMs(verifyMs) },
  { name: "early", cumulativePercent: 40, failureBudget: budget, verifyWindow: durationFromMs(verifyMs) },
  { name: "rest", cumulativePercent: 100, failureBudget: budget, verifyWindow: durationFromMs(verifyMs) },
];

async function waitFor(id: string, done: (r: Rollout) => boolean, timeoutMs = 20_000): Promise<Rollout> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rollout } = await gw.admin(RolloutService).getRollout({ id });
    if (rollout && done(rollout)) return rollout;
    if (Date.now() > deadline) throw new Error(`rollout did not reach the expected state: ${JSON.stringify(rollout, (_k, v) => (typeof v === "bigint" ? String(v) : v))}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const agents: SimAgent[] = [];

beforeAll(async () => {
  gw = await startTestGateway({ heartbeatFlushInterval: "100ms", handshakeRatePerAgent: "1000/s:1000", registerRatePerSource: "1000/s:1000" });
  await gw.admin(ReleaseKeyService).registerReleaseKey({ name: "release-2026", publicKey: releaseKey.publicKey });
  for (let i = 0; i < 24; i++) agents.push(await SimAgent.start(gw, { pinnedReleaseKeys: [releaseKey.publicKey] }, `fleet-${i}`));
  await Promise.all(agents.map((a) => a.connect()));
}, 120_000);

afterAll(async () => {
  for (const a of agents) a.disconnect();
  await gw?.stop();
});

describe("planning fails closed", () => {
  it("refuses a manifest signed by an unregistered key, or with a bad signature", async () => {
    const rollouts = gw.admin(RolloutService);
    await expectCode(rollouts.planRollout({ spec: { manifest: manifest("9.0.0", rogueKey.privateKey) } }), Code.FailedPrecondition, /not signed by a registered release key/);
    const tampered = create(SignedReleaseManifestSchema, { ...manifest("9.0.0"), signature: new Uint8Array(64).fill(1) });
    await expectCode(rollouts.planRollout({ spec: { manifest: tampered } }), Code.FailedPrecondition, /does not verify/);
    await expectCode(rollouts.planRollout({ spec: { manifest: manifest("9.0.0"), targetSelector: { nobody: "here" } } }), Code.FailedPrecondition, /no ACTIVE agents/);
  });

  it("shows who is in each wave in a dry run, with stable membership", async () => {
    const spec = { manifest: manifest("2.0.0"), waves: threeWaves(10_000) };
    const first = await gw.admin(RolloutService).planRollout({ spec });
    const again = await gw.admin(RolloutService).planRollout({ spec });
    expect(first.waves.map((w) => w.memberIds)).toEqual(again.waves.map((w) => w.memberIds));
    expect(first.waves.flatMap((w) => w.memberIds).sort()).toEqual(agents.map((a) => a.id).sort());
  });
});

describe("a three-wave rollout", () => {
  it("runs to completion, wave by wave, verified from heartbeats", async () => {
    const rollouts = gw.admin(RolloutService);
    const { rollout } = await rollouts.createRollout({ spec: { manifest: manifest("2.0.0"), waves: threeWaves(15_000) } });
    const id = rollout?.id ?? "";
    expect(rollout?.state).toBe(RolloutState.PLANNED);
    const watched: RolloutState[] = [];
    const watching = (async () => {
      for await (const update of rollouts.watchRollout({ id })) if (update.rollout) watched.push(update.rollout.state);
    })();
    await rollouts.startRollout({ id });
    for (let wave = 0; wave < 3; wave++) {
      await waitFor(id, (r) => r.waves[wave]?.state === WaveState.SUCCEEDED || r.state === RolloutState.COMPLETED);
      if (wave < 2) await rollouts.advanceRollout({ id });
    }
    const done = await waitFor(id, (r) => r.state === RolloutState.COMPLETED);
    expect(done.waves.map((w) => w.succeeded).reduce((a, b) => a + b, 0)).toBe(24);
    expect(agents.every((a) => a.version === "2.0.0")).toBe(true);
    await watching; // the watch ends by itself at the terminal state
    expect(watched[0]).toBe(RolloutState.PLANNED);
    expect(watched).toContain(RolloutState.RUNNING);
    expect(watched.at(-1)).toBe(RolloutState.COMPLETED);
  });
});

describe("an agent offline during its wave", () => {
  it("gets the directive when it reconnects, and the wave completes then", async () => {
    const rollouts = gw.admin(RolloutService);
    const offline = agents[3];
    if (!offline) throw new Error("no agent");
    offline.disconnect();
    const waves = [{ name: "all", cumulativePercent: 100, failureBudget: 0, verifyWindow: durationFromMs(30_000) }];
    const { rollout } = await rollouts.createRollout({ spec: { manifest: manifest("2.5.0"), waves } });
    const id = rollout?.id ?? "";
    await rollouts.startRollout({ id });
    const waiting = await waitFor(id, (r) => r.waves[0]?.succeeded === agents.length - 1);
    expect(waiting.state).toBe(RolloutState.RUNNING);
    expect(offline.version).not.toBe("2.5.0");
    await offline.connect();
    await waitFor(id, (r) => r.state === RolloutState.COMPLETED);
    expect(offline.version).toBe("2.5.0");
  });
});

describe("a rollout whose canaries fail", () => {
  it("halts after the canary wave naming the failed agents, refuses to advance, and resumes only with a note", async () => {
    const rollouts = gw.admin(RolloutService);
    const waves = [
      { name: "canary", cumulativePercent: 30, failureBudget: 0, verifyWindow: durationFromMs(15_000) },
      { name: "rest", cumulativePercent: 100, failureBudget: 0, verifyWindow: durationFromMs(15_000) },
    ];
    const plan = await rollouts.planRollout({ spec: { manifest: manifest("3.0.0"), waves } });
    const canaries = plan.waves[0]?.memberIds ?? [];
    expect(canaries.length).toBeGreaterThanOrEqual(2);
    const failing = new Set(canaries.slice(0, 2));
    for (const a of agents) a.behaviour = { ...a.behaviour, failInstall: failing.has(a.id) };
    const { rollout } = await rollouts.createRollout({ spec: { manifest: manifest("3.0.0"), waves } });
    const id = rollout?.id ?? "";
    await rollouts.startRollout({ id });
    const halted = await waitFor(id, (r) => r.state === RolloutState.HALTED);
    for (const agentId of failing) expect(halted.haltReason).toContain(agentId);
    expect(halted.failures.map((f) => f.agentId).sort()).toEqual([...failing].sort());
    expect(halted.waves[1]?.state).toBe(WaveState.PENDING);
    await expectCode(rollouts.advanceRollout({ id }), Code.FailedPrecondition, /halted/);
    await expectCode(rollouts.resumeRollout({ id, note: "" }), Code.InvalidArgument, /note/);
    await waitFor(id, (r) => (r.waves[0]?.pending ?? 1) + (r.waves[0]?.applying ?? 1) === 0);
    const resumed = await rollouts.resumeRollout({ id, note: "canary failures are a known hook bug on old kernels" });
    expect(resumed.rollout?.state).toBe(RolloutState.RUNNING);
    expect(resumed.rollout?.resumeNotes).toContain("canary failures are a known hook bug on old kernels");
    await rollouts.advanceRollout({ id });
    await waitFor(id, (r) => r.state === RolloutState.COMPLETED);
  });

  it("allows one rollout per tenant at a time", async () => {
    const rollouts = gw.admin(RolloutService);
    for (const a of agents) a.behaviour = { ...a.behaviour, failInstall: false, hang: true };
    const first = await rollouts.createRollout({ spec: { manifest: manifest("4.0.0"), waves: threeWaves(60_000) } });
    const second = await rollouts.createRollout({ spec: { manifest: manifest("4.0.1"), waves: threeWaves(60_000) } });
    await rollouts.startRollout({ id: first.rollout?.id ?? "" });
    await expectCode(rollouts.startRollout({ id: second.rollout?.id ?? "" }), Code.FailedPrecondition, /another rollout/);
    await rollouts.cancelRollout({ id: first.rollout?.id ?? "", reason: "test over" });
    for (const a of agents) a.behaviour = { ...a.behaviour, hang: false };
  });
});

describe("agents cannot choose their own targeting", () => {
  it("keeps the labels an agent claims apart from the operator's, and targets by the operator's unless asked", async () => {
    const client = gatewayClient(gw.transport);
    const token = (await gw.admin(EnrollmentTokenService).createEnrollmentToken({ maxUses: 1, labels: { env: "staging" } })).secret;
    const reg = await register(client, { token, identity: newIdentity(), name: "claims-prod", host: { agentVersion: "1.0.0", labels: { env: "prod", region: "eu" } } });
    const { agent } = await gw.admin(AgentService).getAgent({ id: reg.agentId });
    expect(agent?.labels).toEqual({ env: "staging" });
    expect(agent?.host?.labels).toEqual({ env: "prod", region: "eu" });
    // Selectors match operator labels…
    const byLabel = await gw.admin(AgentService).listAgents({ labelSelector: { env: "prod" } });
    expect(byLabel.agents.map((a) => a.id)).not.toContain(reg.agentId);
    await expectCode(gw.admin(RolloutService).planRollout({ spec: { manifest: manifest("9.1.0"), targetSelector: { env: "prod" } } }), Code.FailedPrecondition, /no ACTIVE agents/);
    // …and host labels only when the operator asks for them explicitly.
    const byHost = await gw.admin(AgentService).listAgents({ hostLabelSelector: { env: "prod" } });
    expect(byHost.agents.map((a) => a.id)).toEqual([reg.agentId]);
    const plan = await gw.admin(RolloutService).planRollout({ spec: { manifest: manifest("9.1.0"), targetHostSelector: { region: "eu" } } });
    expect(plan.waves.flatMap((w) => w.memberIds)).toEqual([reg.agentId]);
  });
});
