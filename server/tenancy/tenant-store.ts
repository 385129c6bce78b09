import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import type { Executor } from "../db/database.js";

/** A tenant as the services see it. */
export interface TenantRecord {
  id: string;
  name: string;
}

/** A tenant with its provider-plane state (TenantService). */
export interface TenantDetails extends TenantRecord {
  createdAt: Date;
  suspendedAt: Date | null;
  suspendReason: string;
  /** Records in the tenant's audit chain, and the chain's head hash. */
  auditSeq: number;
  auditHead: Uint8Array;
}

const DETAIL_COLUMNS = ["id", "name", "created_at", "suspended_at", "suspend_reason", "audit_seq", "audit_head"] as const;

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

/** One tenant with its state, or undefined; `forUpdate` locks the row (and so its audit chain). */
export async function getTenantDetails(db: Executor, id: string, forUpdate = false): Promise<TenantDetails | undefined> {
  let query = db.selectFrom("tenants").select(DETAIL_COLUMNS).where("id", "=", id);
  if (forUpdate) query = query.forUpdate();
  const row = await query.executeTakeFirst();
  return row ? toDetails(row) : undefined;
}

/**
 * Tenants newest first, keyed by (created_at, id), after `after`. (Newest first because the
 * page token carries milliseconds and the column microseconds: "<" on a truncated time never
 * repeats a row, as in the other listings.)
 */
export async function listTenantDetails(db: Executor, page: { limit: number; after?: { createdAt: Date; id: string } }): Promise<TenantDetails[]> {
  let query = db.selectFrom("tenants").select(DETAIL_COLUMNS);
  const after = page.after;
  if (after) query = query.where((eb) => eb.or([eb("created_at", "<", after.createdAt), eb.and([eb("created_at", "=", after.createdAt), eb("id", "<", after.id)])]));
  const rows = await query.orderBy("created_at", "desc").orderBy("id", "desc").limit(page.limit).execute();
  return rows.map(toDetails);
}

/** Sets or clears the suspension; returns the tenant afterwards, or undefined for an unknown id. */
export async function setTenantSuspension(db: Executor, id: string, suspension: { reason: string } | null): Promise<TenantDetails | undefined> {
  const row = await db
    .updateTable("tenants")
    .set(suspension ? { suspended_at: sql<Date>`coalesce(suspended_at, now())`, suspend_reason: suspension.reason } : { suspended_at: null, suspend_reason: "" })
    .where("id", "=", id)
    .returning(DETAIL_COLUMNS)
    .executeTakeFirst();
  return row ? toDetails(row) : undefined;
}

/** The ids of every suspended tenant (few: the gate keeps them in memory). */
export async function suspendedTenantIds(db: Executor): Promise<string[]> {
  const rows = await db.selectFrom("tenants").select("id").where("suspended_at", "is not", null).execute();
  return rows.map((r) => r.id);
}

/** Deletes the tenant row; the caller has deleted everything that references it. */
export async function deleteTenantRow(db: Executor, id: string): Promise<boolean> {
  const result = await db.deleteFrom("tenants").where("id", "=", id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

/**
 * Reserves `count` consecutive audit sequence numbers of the tenant (taking its row lock until
 * commit, which orders the tenant's writers) and returns the first with the current head.
 */
export async function reserveAuditSeqs(trx: Executor, tenantId: string, count: number): Promise<{ first: number; head: Uint8Array }> {
  const row = await trx
    .updateTable("tenants")
    .set({ audit_seq: sql`audit_seq + ${count}` })
    .where("id", "=", tenantId)
    .returning(["audit_seq", "audit_head"])
    .executeTakeFirstOrThrow();
  return { first: Number(row.audit_seq) - count + 1, head: new Uint8Array(row.audit_head) };
}

/** Records the hash of the tenant's newest audit record. */
export async function setAuditHead(trx: Executor, tenantId: string, hash: Uint8Array): Promise<void> {
  await trx.updateTable("tenants").set({ audit_head: hash }).where("id", "=", tenantId).execute();
}

function toDetails(row: {
  id: string;
  name: string;
  created_at: Date;
  suspended_at: Date | null;
  suspend_reason: string;
  audit_seq: unknown;
  audit_head: Uint8Array;
}): TenantDetails {
  return {
    id: row.id,
    name: row.name,
    createdAt: row.created_at,
    suspendedAt: row.suspended_at,
    suspendReason: row.suspend_reason,
    auditSeq: Number(row.audit_seq),
    auditHead: new Uint8Array(row.audit_head),
  };
}
