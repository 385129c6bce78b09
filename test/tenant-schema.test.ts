// The schema itself refuses a link between two tenants (issue 14 item 2, migration 0011):
// every reference between tenant-scoped rows is a composite (tenant_id, id) foreign key.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReleaseKeyService } from "../gen/agentgateway/admin/v1/release_keys_pb.js";
import { RolloutService } from "../gen/agentgateway/admin/v1/rollouts_pb.js";
import { EnrollmentTokenService } from "../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { signReleaseManifest } from "../cli/release.js";
import { generateKeyPair } from "../client/protocol/ed25519.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";
import { type CreatedTenant, createTenantViaProvider, enrollInto } from "./support/tenants.js";

let gw: TestGateway;
let a: CreatedTenant;
let b: CreatedTenant;
const ids = { agentA: "", agentB: "", tokenA: "", releaseKeyA: "", rolloutA: "" };

beforeAll(async () => {
  gw = await startTestGateway();
  a = await createTenantViaProvider(gw, "schema-a");
  b = await createTenantViaProvider(gw, "schema-b");
  ids.agentA = (await enrollInto(gw, a.adminKey)).registration.agentId;
  ids.agentB = (await enrollInto(gw, b.adminKey)).registration.agentId;
  ids.tokenA = (await gw.admin(EnrollmentTokenService, a.adminKey).createEnrollmentToken({})).token?.id ?? "";
  const release = generateKeyPair();
  ids.releaseKeyA = (await gw.admin(ReleaseKeyService, a.adminKey).registerReleaseKey({ name: "k", publicKey: release.publicKey })).key?.id ?? "";
  const manifest = signReleaseManifest({ version: "1.0.0", artifactUrl: "https://x.invalid/a.tgz", artifactSha256: new Uint8Array(32), artifactSize: 1n, notes: "" }, release.privateKey);
  ids.rolloutA = (await gw.admin(RolloutService, a.adminKey).createRollout({ spec: { manifest } })).rollout?.id ?? "";
}, 60_000);

afterAll(async () => {
  await gw?.stop();
});

/** Runs an insert in a transaction that is always rolled back; returns the SQLSTATE it failed with, or "ok". */
async function attempt(write: (trx: TestGateway["gateway"]["context"]["database"]["db"]) => Promise<unknown>): Promise<string> {
  const rollback = new Error("rollback");
  try {
    await gw.gateway.context.database.db.transaction().execute(async (trx) => {
      await write(trx);
      throw rollback;
    });
  } catch (err) {
    if (err === rollback) return "ok";
    return String((err as { code?: unknown }).code ?? err);
  }
  return "ok";
}

const FOREIGN_KEY_VIOLATION = "23503";

describe("composite tenant foreign keys", () => {
  // A's agent has a session (it handshook): moving that row to another tenant is the attack.
  const session = (tenantId: string, agentId: string) => (trx: Parameters<Parameters<typeof attempt>[0]>[0]) =>
    trx.updateTable("sessions").set({ tenant_id: tenantId }).where("agent_id", "=", agentId).executeTakeFirstOrThrow().then((r) => expect(r.numUpdatedRows).toBe(1n));

  it("accepts a link inside one tenant (the control: the attempts below could succeed)", async () => {
    expect(await attempt(session(a.tenantId, ids.agentA))).toBe("ok");
    expect(await attempt((trx) => trx.insertInto("auth_challenges").values({ id: randomUUID(), tenant_id: a.tenantId, agent_id: ids.agentA, nonce: new Uint8Array(32), expires_at: new Date() }).execute())).toBe("ok");
    expect(await attempt((trx) => trx.insertInto("used_challenges").values({ id: randomUUID(), tenant_id: a.tenantId, agent_id: ids.agentA, expires_at: new Date() }).execute())).toBe("ok");
  });

  it("refuses a session, a challenge or a command of one tenant for another tenant's agent", async () => {
    expect(await attempt(session(b.tenantId, ids.agentA))).toBe(FOREIGN_KEY_VIOLATION);
    expect(await attempt((trx) => trx.insertInto("auth_challenges").values({ id: randomUUID(), tenant_id: b.tenantId, agent_id: ids.agentA, nonce: new Uint8Array(32), expires_at: new Date() }).execute())).toBe(FOREIGN_KEY_VIOLATION);
    expect(await attempt((trx) => trx.insertInto("used_challenges").values({ id: randomUUID(), tenant_id: b.tenantId, agent_id: ids.agentA, expires_at: new Date() }).execute())).toBe(FOREIGN_KEY_VIOLATION);
    expect(
      await attempt((trx) =>
        trx.insertInto("agent_commands").values({ agent_id: ids.agentA, sequence: 999, tenant_id: b.tenantId, command_id: randomUUID(), kind: "x", body: new Uint8Array(0) }).execute(),
      ),
    ).toBe(FOREIGN_KEY_VIOLATION);
  });

  it("refuses an agent of one tenant enrolled by another tenant's token", async () => {
    expect(
      await attempt((trx) =>
        trx
          .insertInto("agents")
          .values({ id: randomUUID(), tenant_id: b.tenantId, name: "x", identity_public_key: new Uint8Array(32).fill(3), verification_code: "x", state: "ACTIVE", labels: "{}", enrollment_token_id: ids.tokenA })
          .execute(),
      ),
    ).toBe(FOREIGN_KEY_VIOLATION);
  });

  it("refuses a rollout signed under another tenant's release key, and members across tenants", async () => {
    const rollout = await gw.gateway.context.database.db.selectFrom("rollouts").selectAll().where("id", "=", ids.rolloutA).executeTakeFirstOrThrow();
    expect(
      await attempt((trx) =>
        trx
          .insertInto("rollouts")
          .values({ ...rollout, id: randomUUID(), tenant_id: b.tenantId, state: "PLANNED", target_selector: "{}", resume_notes: "[]", created_at: undefined })
          .execute(),
      ),
    ).toBe(FOREIGN_KEY_VIOLATION);
    // B's agent into A's rollout, whichever tenant the row claims.
    for (const tenantId of [a.tenantId, b.tenantId]) {
      expect(await attempt((trx) => trx.insertInto("rollout_members").values({ rollout_id: ids.rolloutA, agent_id: ids.agentB, tenant_id: tenantId, wave: 0, state: "PENDING" }).execute())).toBe(
        FOREIGN_KEY_VIOLATION,
      );
    }
    // The control: A's own agent may be a member of A's rollout.
    expect(await attempt((trx) => trx.insertInto("rollout_members").values({ rollout_id: ids.rolloutA, agent_id: ids.agentA, tenant_id: a.tenantId, wave: 0, state: "PENDING" }).onConflict((oc) => oc.doNothing()).execute())).toBe("ok");
  });
});
