import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import type { Executor } from "../db/database.js";

/** A tenant as the services see it. */
export interface TenantRecord {
  id: string;
  name: string;
}

/** The oldest tenant, or undefined on an empty database. */
export async function firstTenant(db: Executor): Promise<TenantRecord | undefined> {
  return db.selectFrom("tenants").select(["id", "name"]).orderBy("created_at").limit(1).executeTakeFirst();
}

/** Creates the tenant unless one of that name exists; undefined when another writer won. */
export async function insertTenantIfAbsent(db: Executor, name: string): Promise<TenantRecord | undefined> {
  return db
    .insertInto("tenants")
    .values({ id: randomUUID(), name })
    .onConflict((oc) => oc.column("name").doNothing())
    .returning(["id", "name"])
    .executeTakeFirst();
}

/** The tenant of that name; throws when there is none. */
export async function getTenantByName(db: Executor, name: string): Promise<TenantRecord> {
  return db.selectFrom("tenants").select(["id", "name"]).where("name", "=", name).executeTakeFirstOrThrow();
}

/** The tenant's display name, or undefined for an unknown id. */
export async function getTenantName(db: Executor, id: string): Promise<string | undefined> {
  const row = await db.selectFrom("tenants").select(["name"]).where("id", "=", id).executeTakeFirst();
  return row?.name;
}

/**
 * Takes the next audit sequence number of the tenant and returns it with the current chain
 * head. The UPDATE takes the tenant row's lock, which orders concurrent audit writers of one
 * tenant until the transaction ends, without blocking other tenants.
 */
export async function nextAuditSeq(trx: Executor, tenantId: string): Promise<{ seq: number; head: Uint8Array }> {
  const row = await trx
    .updateTable("tenants")
    .set({ audit_seq: sql`audit_seq + 1` })
    .where("id", "=", tenantId)
    .returning(["audit_seq", "audit_head"])
    .executeTakeFirstOrThrow();
  return { seq: Number(row.audit_seq), head: new Uint8Array(row.audit_head) };
}

/** Records the hash of the tenant's newest audit record. */
export async function setAuditHead(trx: Executor, tenantId: string, hash: Uint8Array): Promise<void> {
  await trx.updateTable("tenants").set({ audit_head: hash }).where("id", "=", tenantId).execute();
}
