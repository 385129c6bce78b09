// Resuming a halted rollout must let the verifier finish it. The bug this pins: resuming a
// halted LAST wave whose members had all finished marked the wave SUCCEEDED and the rollout
// RUNNING, and the verifier completed rollouts only on a wave's IN_PROGRESS → SUCCEEDED
// transition, so the rollout stayed RUNNING for ever (Advance refuses: "no further wave").
// Passes are run by the test (the periodic verifier is parked), so nothing here is timed.
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AuditService } from "../gen/agentgateway/admin/v1/audit_pb.js";
import { ReleaseKeyService } from "../gen/agentgateway/admin/v1/release_keys_pb.js";
import { RolloutService, RolloutState, WaveState } from "../gen/agentgateway/admin/v1/rollouts_pb.js";
import { signReleaseManifest } from "../cli/release.js";
import { generateKeyPair } from "../client/protocol/ed25519.js";
import { gatewayClient, register } from "../agent/lib/direct.js";
import { mintToken, newIdentity } from "./support/agents.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";

let gw: TestGateway;
const releaseKey = generateKeyPair();

const manifest = (version: string) =>
  signReleaseManifest({ version, artifactUrl: `https://releases.example.invalid/${version}.tgz`, artifactSha256: new Uint8Array(32).fill(4), artifactSize: 1n, notes: "" }, releaseKey.privateKey);

/** Waits until the wave's verify window (50 ms) is over, then runs one verifier pass. */
async function passAfterWindow(): Promise<void> {
  await new Promise((r) => setTimeout(r, 150));
  await gw.gateway.context.rollouts.evaluateSoon();
}

async function stateOf(id: string): Promise<{ state: string; currentWave: number; waves: string[] }> {
  const { rollout } = await gw.admin(RolloutService).getRollout({ id });
  return { state: RolloutState[rollout!.state], currentWave: rollout!.currentWave, waves: rollout!.waves.map((w) => WaveState[w.state]) };
}

beforeAll(async () => {
  gw = await startTestGateway({ rolloutVerifyInterval: "1h" });
  await gw.admin(ReleaseKeyService).registerReleaseKey({ name: "resume-key", publicKey: releaseKey.publicKey });
  // Two agents that never apply anything: their members fail when the window closes. Their
  // labels put one in each wave of the two-wave train.
  for (const ring of ["a", "b"]) {
    const token = await mintToken(gw, { labels: { ring } });
    await register(gatewayClient(gw.transport), { token, identity: newIdentity(), name: `stuck-${ring}` });
  }
});

afterAll(async () => {
  await gw?.stop();
});

// One rollout per tenant may run: a test that fails leaves its rollout to be cancelled here, so
// the next test still shows its own result.
const started: string[] = [];
afterEach(async () => {
  for (const id of started.splice(0)) await gw.admin(RolloutService).cancelRollout({ id, reason: "test over" }).catch(() => {});
});

describe("resuming a halted rollout", () => {
  it("completes a rollout whose halted last wave is resumed with every member finished", async () => {
    const rollouts = gw.admin(RolloutService);
    const { rollout } = await rollouts.createRollout({ spec: { manifest: manifest("8.0.0"), waves: [{ name: "all", cumulativePercent: 100, failureBudget: 0, verifyWindow: durationFromMs(50) }] } });
    const id = rollout!.id;
    started.push(id);
    await rollouts.startRollout({ id });
    await passAfterWindow();
    expect(await stateOf(id)).toEqual({ state: "HALTED", currentWave: 0, waves: ["FAILED"] });

    await rollouts.resumeRollout({ id, note: "both hosts are being replaced anyway" });
    await gw.gateway.context.rollouts.evaluateSoon();
    expect(await stateOf(id)).toEqual({ state: "COMPLETED", currentWave: 0, waves: ["SUCCEEDED"] });
    const { events } = await gw.admin(AuditService).listAuditEvents({ action: "rollout.completed" });
    expect(events.filter((e) => e.target === `rollout:${id}`)).toHaveLength(1);
  });

  it("does not complete early: a resumed FIRST wave waits for Advance, and the resumed last wave then completes", async () => {
    const rollouts = gw.admin(RolloutService);
    const waves = [
      { name: "first", labelSelector: { ring: "a" }, failureBudget: 0, verifyWindow: durationFromMs(50) },
      { name: "second", cumulativePercent: 100, failureBudget: 0, verifyWindow: durationFromMs(50) },
    ];
    const { rollout } = await rollouts.createRollout({ spec: { manifest: manifest("9.0.0"), waves } });
    const id = rollout!.id;
    started.push(id);
    await rollouts.startRollout({ id });
    await passAfterWindow();
    expect(await stateOf(id)).toEqual({ state: "HALTED", currentWave: 0, waves: ["FAILED", "PENDING"] });

    await rollouts.resumeRollout({ id, note: "accept the first host" });
    await gw.gateway.context.rollouts.evaluateSoon();
    expect(await stateOf(id)).toEqual({ state: "RUNNING", currentWave: 0, waves: ["SUCCEEDED", "PENDING"] });

    await rollouts.advanceRollout({ id });
    await passAfterWindow();
    expect(await stateOf(id)).toEqual({ state: "HALTED", currentWave: 1, waves: ["SUCCEEDED", "FAILED"] });
    await rollouts.resumeRollout({ id, note: "accept the second host" });
    await gw.gateway.context.rollouts.evaluateSoon();
    expect(await stateOf(id)).toEqual({ state: "COMPLETED", currentWave: 1, waves: ["SUCCEEDED", "SUCCEEDED"] });
  });

  it("completes a rollout an operator halted by hand once its last wave is resumed", async () => {
    const rollouts = gw.admin(RolloutService);
    const { rollout } = await rollouts.createRollout({ spec: { manifest: manifest("10.0.0"), waves: [{ name: "all", cumulativePercent: 100, failureBudget: 5, verifyWindow: durationFromMs(50) }] } });
    const id = rollout!.id;
    started.push(id);
    await rollouts.startRollout({ id });
    await rollouts.haltRollout({ id, reason: "looking at something" });
    // The halt withdrew both directives (neither agent ever connected): their members wait
    // instead of failing when the window closes.
    await passAfterWindow();
    expect(await stateOf(id)).toEqual({ state: "HALTED", currentWave: 0, waves: ["IN_PROGRESS"] });
    expect((await gw.admin(RolloutService).getRollout({ id })).rollout?.waves[0]).toMatchObject({ pending: 2, failed: 0 });
    // Resume directs them again with a fresh window; when it closes they fail (within the budget)
    // and the rollout completes.
    await rollouts.resumeRollout({ id, note: "nothing wrong" });
    await passAfterWindow();
    expect(await stateOf(id)).toEqual({ state: "COMPLETED", currentWave: 0, waves: ["SUCCEEDED"] });
  });
});
