import { randomUUID } from "node:crypto";
import type { Executor } from "../db/database.js";

/** A tenant's registered release-signing key. */
export interface ReleaseKeyRecord {
  id: string;
  name: string;
  publicKey: Uint8Array;
  createdAt: Date;
  revokedAt: Date | null;
}

const COLUMNS = ["id", "name", "public_key", "created_at", "revoked_at"] as const;

/** Registers a key; the unique index refuses the same key twice in a tenant. */
export async function insertReleaseKey(db: Executor, input: { tenantId: string; name: string; publicKey: Uint8Array }): Promise<ReleaseKeyRecord> {
  const row = await db
    .insertInto("release_keys")
    .values({ id: randomUUID(), tenant_id: input.tenantId, name: input.name, public_key: input.publicKey })
    .returning(COLUMNS)
    .executeTakeFirstOrThrow();
  return toRecord(row);
}

/** The tenant's keys, newest first; revoked ones only when asked. */
export async function listReleaseKeys(db: Executor, tenantId: string, includeRevoked: boolean): Promise<ReleaseKeyRecord[]> {
  let query = db.selectFrom("release_keys").select(COLUMNS).where("tenant_id", "=", tenantId);
  if (!includeRevoked) query = query.where("revoked_at", "is", null);
  const rows = await query.orderBy("created_at", "desc").execute();
  return rows.map(toRecord);
}

/** Revokes a live key; undefined when there is no such live key (missing or already revoked). */
export async function revokeReleaseKey(db: Executor, tenantId: string, id: string): Promise<ReleaseKeyRecord | undefined> {
  const row = await db
    .updateTable("release_keys")
    .set({ revoked_at: new Date() })
    .where("tenant_id", "=", tenantId)
    .where("id", "=", id)
    .where("revoked_at", "is", null)
    .returning(COLUMNS)
    .executeTakeFirst();
  return row ? toRecord(row) : undefined;
}

/** A key of the tenant by id. */
export async function getReleaseKey(db: Executor, tenantId: string, id: string): Promise<ReleaseKeyRecord | undefined> {
  const row = await db.selectFrom("release_keys").select(COLUMNS).where("tenant_id", "=", tenantId).where("id", "=", id).executeTakeFirst();
  return row ? toRecord(row) : undefined;
}

/** Deletes every release key of a tenant being deleted (TenantService; it has no rollouts that point at them). */
export async function deleteTenantReleaseKeys(db: Executor, tenantId: string): Promise<void> {
  await db.deleteFrom("release_keys").where("tenant_id", "=", tenantId).execute();
}

/** The tenant's key with these public-key bytes (revoked or not). */
export async function findReleaseKeyByPublicKey(db: Executor, tenantId: string, publicKey: Uint8Array): Promise<ReleaseKeyRecord | undefined> {
  const row = await db.selectFrom("release_keys").select(COLUMNS).where("tenant_id", "=", tenantId).where("public_key", "=", publicKey).executeTakeFirst();
  return row ? toRecord(row) : undefined;
}

function toRecord(row: { id: string; name: string; public_key: Uint8Array; created_at: Date; revoked_at: Date | null }): ReleaseKeyRecord {
  return { id: row.id, name: row.name, publicKey: new Uint8Array(row.public_key), createdAt: row.created_at, revokedAt: row.revoked_at };
}
