// Rotation of the provider's system key (SystemKeyService): the new secret is shown once and
// stored as a hash, the old key is refused at once on every replica and after a restart that
// still carries it in AGW_BOOTSTRAP_SYSTEM_KEY, a tenant key cannot rotate, and the provider
// audit chain records it.
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyService } from "../gen/agentgateway/admin/v1/api_keys_pb.js";
import { ProviderAuditService, SystemKeyService, TenantService } from "../gen/agentgateway/provider/v1/tenants_pb.js";
import { parseSecret, secretFingerprint } from "../client/protocol/secrets.js";
import { Reason, reasonOf } from "../client/reasons.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { expectCode } from "./support/expect-code.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";

let database: TestDatabase;
let gw: TestGateway;
let replica: TestGateway;

beforeAll(async () => {
  database = await createTestDatabase();
  gw = await startTestGateway({}, database);
  replica = await startTestGateway({ bootstrapSystemKey: gw.systemKey }, database);
}, 60_000);

afterAll(async () => {
  await replica?.gateway.stop();
  await gw?.gateway.stop();
  await database?.drop();
});

const provider = (on: TestGateway, key: string) => on.admin(SystemKeyService, key);

describe("system key rotation", () => {
  it("tells the system key who it is, and refuses a tenant key on both RPCs", async () => {
    const me = await provider(gw, gw.systemKey).whoAmI({});
    expect(me.key?.name).toBe("bootstrap system");
    expect(me.key?.displayPrefix).toBe(secretFingerprint("systemKey", gw.systemKey));
    expect(reasonOf(await expectCode(provider(gw, gw.adminKey).whoAmI({}), Code.PermissionDenied))).toBe(Reason.SYSTEM_KEY_REQUIRED);
    // A tenant admin cannot rotate the provider's key: refused before anything is written.
    expect(reasonOf(await expectCode(provider(gw, gw.adminKey).rotateSystemKey({}), Code.PermissionDenied))).toBe(Reason.SYSTEM_KEY_REQUIRED);
    await expectCode(provider(gw, `agwp_${"A".repeat(43)}`).rotateSystemKey({}), Code.Unauthenticated);
    expect((await provider(gw, gw.systemKey).whoAmI({})).key?.id).toBe(me.key?.id);
    const rows = await gw.gateway.context.database.db.selectFrom("system_keys").select("id").execute();
    expect(rows).toHaveLength(1);
  });

  it("refuses a name already taken and leaves the key as it was", async () => {
    await expectCode(provider(gw, gw.systemKey).rotateSystemKey({ name: "bootstrap system" }), Code.AlreadyExists);
    await expect(provider(replica, gw.systemKey).whoAmI({})).resolves.toBeDefined();
  });

  let rotated = "";
  it("returns the new key once; from then on the old key is refused on both replicas and the new one works", async () => {
    const before = await provider(gw, gw.systemKey).whoAmI({});
    const res = await provider(gw, gw.systemKey).rotateSystemKey({ name: "after-incident-7" });
    rotated = res.secret;
    expect(parseSecret(res.secret, "systemKey")).toBe(true);
    expect(res.revokedKeyId).toBe(before.key?.id);
    expect(res.key).toMatchObject({ name: "after-incident-7", displayPrefix: secretFingerprint("systemKey", res.secret) });
    // The replica that did not serve the rotation refuses the old key on its very next call.
    for (const on of [replica, gw]) {
      await expectCode(provider(on, gw.systemKey).whoAmI({}), Code.Unauthenticated);
      await expectCode(on.admin(TenantService, gw.systemKey).listTenants({}), Code.Unauthenticated);
      await expectCode(provider(on, gw.systemKey).rotateSystemKey({}), Code.Unauthenticated);
      // No longer a system key at all, so not "a system key on a tenant RPC" either.
      const onTenant = await expectCode(on.admin(ApiKeyService, gw.systemKey).whoAmI({}), Code.Unauthenticated);
      expect(reasonOf(onTenant)).toBeUndefined();
      expect((await provider(on, rotated).whoAmI({})).key?.id).toBe(res.key?.id);
      await expect(on.admin(TenantService, rotated).listTenants({})).resolves.toBeDefined();
      expect(reasonOf(await expectCode(on.admin(ApiKeyService, rotated).whoAmI({}), Code.PermissionDenied))).toBe(Reason.SYSTEM_KEY_NOT_ALLOWED);
    }
    // Hashes only: neither secret is in the table.
    const rows = await gw.gateway.context.database.db.selectFrom("system_keys").selectAll().execute();
    expect(rows.map((r) => [r.name, r.revoked_at !== null])).toEqual(expect.arrayContaining([["bootstrap system", true], ["after-incident-7", false]]));
    const text = JSON.stringify(rows, (_k, v) => (v instanceof Uint8Array || Buffer.isBuffer(v) ? Buffer.from(v).toString("latin1") : v));
    expect(text).not.toContain(rotated);
    expect(text).not.toContain(gw.systemKey);
  });

  it("is recorded in the provider audit chain, without the secret, and the chain verifies", async () => {
    const audit = await replica.admin(ProviderAuditService, rotated).listProviderAuditEvents({ pageSize: 1000 });
    const record = audit.events.find((e) => e.action === "system_key.rotated");
    const me = await provider(gw, rotated).whoAmI({});
    const old = await gw.gateway.context.database.db.selectFrom("system_keys").select("id").where("name", "=", "bootstrap system").executeTakeFirstOrThrow();
    expect(record?.actor).toBe(`system_key:${old.id}`);
    expect(record?.target).toBe(`system_key:${old.id}`);
    expect(record?.data).toMatchObject({ new_key_id: me.key?.id, new_key_name: "after-incident-7" });
    expect(JSON.stringify(audit.events.map((e) => [e.actor, e.target, e.data]))).not.toContain(rotated);
    expect((await gw.admin(ProviderAuditService, rotated).verifyProviderAuditChain({})).ok).toBe(true);
  });

  it("rotates a key once when several rotations race: one wins, the others are refused", async () => {
    const results = await Promise.allSettled([gw, replica, gw, replica].map((on) => provider(on, rotated).rotateSystemKey({})));
    const won = results.filter((r) => r.status === "fulfilled");
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === "rejected") await expectCode(Promise.reject(r.reason), Code.Unauthenticated);
    const next = (won[0] as PromiseFulfilledResult<{ secret: string }>).value.secret;
    const live = await gw.gateway.context.database.db.selectFrom("system_keys").select("name").where("revoked_at", "is", null).execute();
    expect(live).toHaveLength(1);
    await expectCode(provider(gw, rotated).whoAmI({}), Code.Unauthenticated);
    rotated = next;
    await expect(provider(replica, rotated).whoAmI({})).resolves.toBeDefined();
  });

  it("does not bring the old key back on a restart that still has it in AGW_BOOTSTRAP_SYSTEM_KEY", async () => {
    const restarted = await startTestGateway({ bootstrapSystemKey: gw.systemKey }, database);
    try {
      expect(restarted.gateway.bootstrap.systemKey).toBeUndefined();
      await expectCode(provider(restarted, gw.systemKey).whoAmI({}), Code.Unauthenticated);
      await expect(provider(restarted, rotated).whoAmI({})).resolves.toBeDefined();
    } finally {
      await restarted.gateway.stop();
    }
  });
});
