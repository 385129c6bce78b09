// Rollout state changes are serialized (issue 11 item 3): the verifier locks the rollout row and
// reads its state again, so an operator's Cancel that commits while a verifier pass is running
// is never undone. The race is made deterministic by holding the row lock from a second
// connection while the pass runs.
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { ApiKeyService, Role } from "../gen/agentgateway/admin/v1/api_keys_pb.js";
import { AuditService } from "../gen/agentgateway/admin/v1/audit_pb.js";
import { ReleaseKeyService } from "../gen/agentgateway/admin/v1/release_keys_pb.js";
import { RolloutService, RolloutState } from "../gen/agentgateway/admin/v1/rollouts_pb.js";
import { signReleaseManifest } from "../cli/release.js";
import { generateKeyPair } from "../client/protocol/ed25519.js";
import { enrollAgent } from "./support/agents.js";
import { expectCode } from "./support/expect-code.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";

let gw: TestGateway;
const releaseKey = generateKeyPair();

beforeAll(async () => {
  // The periodic verifier stays out of the way; the test runs passes itself.
  gw = await startTestGateway({ rolloutVerifyInterval: "1h", maxStreamsPerCredential: "2" });
  await gw.admin(ReleaseKeyService).registerReleaseKey({ name: "race-key", publicKey: releaseKey.publicKey });
});

afterAll(async () => {
  await gw?.stop();
});

describe("rollout races", () => {
  it("a Cancel committed during a verifier pass stays cancelled: the pass does not halt it afterwards", async () => {
    // One agent that never applies the release: its member turns straggler after the window,
    // which makes the verifier want to halt the rollout.
    await enrollAgent(gw, "never-upgrades");
    const manifest = signReleaseManifest({ version: "5.0.0", artifactUrl: "https://releases.example.invalid/a.tgz", artifactSha256: new Uint8Array(32).fill(1), artifactSize: 1n, notes: "" }, releaseKey.privateKey);
    const rollouts = gw.admin(RolloutService);
    const { rollout } = await rollouts.createRollout({ spec: { manifest, waves: [{ name: "all", cumulativePercent: 100, failureBudget: 0, verifyWindow: durationFromMs(50) }] } });
    const id = rollout!.id;
    await rollouts.startRollout({ id });
    await new Promise((r) => setTimeout(r, 200));

    const operator = new pg.Client({ connectionString: gw.database.url });
    await operator.connect();
    try {
      await operator.query("BEGIN");
      await operator.query("SELECT id FROM rollouts WHERE id = $1 FOR UPDATE", [id]);
      const pass = gw.gateway.context.rollouts.evaluateSoon();
      await new Promise((r) => setTimeout(r, 300));
      await operator.query("UPDATE rollouts SET state = 'CANCELLED', updated_at = now() WHERE id = $1", [id]);
      await operator.query("COMMIT");
      await pass;
    } finally {
      await operator.end();
    }
    const { rollout: after } = await rollouts.getRollout({ id });
    expect(RolloutState[after!.state]).toBe("CANCELLED");
    const { events } = await gw.admin(AuditService).listAuditEvents({ action: "rollout.halted" });
    expect(events.filter((e) => e.target === `rollout:${id}`)).toEqual([]);
  });

  it("the same pass halts a RUNNING rollout whose wave ran out of budget (the race test can fail)", async () => {
    await enrollAgent(gw, "never-upgrades-2");
    const manifest = signReleaseManifest({ version: "6.0.0", artifactUrl: "https://releases.example.invalid/b.tgz", artifactSha256: new Uint8Array(32).fill(2), artifactSize: 1n, notes: "" }, releaseKey.privateKey);
    const rollouts = gw.admin(RolloutService);
    const { rollout } = await rollouts.createRollout({ spec: { manifest, waves: [{ name: "all", cumulativePercent: 100, failureBudget: 0, verifyWindow: durationFromMs(50) }] } });
    await rollouts.startRollout({ id: rollout!.id });
    await new Promise((r) => setTimeout(r, 200));
    await gw.gateway.context.rollouts.evaluateSoon();
    const { rollout: after } = await rollouts.getRollout({ id: rollout!.id });
    expect(RolloutState[after!.state]).toBe("HALTED");
  });

  it("caps the server streams one credential holds open; other credentials are unaffected", async () => {
    const manifest = signReleaseManifest({ version: "7.0.0", artifactUrl: "https://releases.example.invalid/c.tgz", artifactSha256: new Uint8Array(32).fill(3), artifactSize: 1n, notes: "" }, releaseKey.privateKey);
    await enrollAgent(gw, "watched");
    const rollouts = gw.admin(RolloutService);
    const { rollout } = await rollouts.createRollout({ spec: { manifest } });
    const id = rollout!.id;
    const watch = (key = gw.adminKey) => {
      const abort = new AbortController();
      const iterator = gw.admin(RolloutService, key).watchRollout({ id }, { signal: abort.signal })[Symbol.asyncIterator]();
      return { first: iterator.next(), abort };
    };
    const a = watch();
    const b = watch();
    await Promise.all([a.first, b.first]);
    const c = watch();
    await expectCode(c.first, Code.ResourceExhausted, /open streams/);
    const { secret: otherKey } = await gw.admin(ApiKeyService).createApiKey({ name: "other watcher", role: Role.VIEWER });
    const d = watch(otherKey);
    await d.first;
    a.abort.abort();
    await expect.poll(async () => {
      const e = watch();
      try {
        await e.first;
        return "open";
      } catch (err) {
        return String(err);
      } finally {
        e.abort.abort();
      }
    }, { timeout: 5_000, interval: 100 }).toBe("open");
    b.abort.abort();
    d.abort.abort();
    await rollouts.cancelRollout({ id, reason: "test done" });
  });
});
