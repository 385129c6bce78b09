import { sql } from "kysely";
import type { ChainRecord } from "../audit/audit-store.js";
import type { Executor } from "../db/database.js";

/** One record of the provider audit chain (no tenant: the chain belongs to the provider). */
export type ProviderAuditRecord = ChainRecord;

/**
 * Takes the next sequence number of the provider chain with the current head. The UPDATE
 * takes the head row's lock, which orders concurrent provider audit writers until the
 * transaction ends.
 */
export async function nextProviderAuditSeq(trx: Executor): Promise<{ seq: number; head: Uint8Array }> {
  const row = await trx.updateTable("provider_audit_head").set({ seq: sql`seq + 1` }).returning(["seq", "head"]).executeTakeFirstOrThrow();
  return { seq: Number(row.seq), head: new Uint8Array(row.head) };
}

/** Appends one record and moves the head to it. */
export async function insertProviderAuditRecord(trx: Executor, record: ProviderAuditRecord): Promise<void> {
  await trx
    .insertInto("provider_audit_events")
    .values({
      seq: record.seq,
      actor: record.actor,
      action: record.action,
      target: record.target,
      data: JSON.stringify(record.data),
      created_at: record.createdAt,
      prev_hash: record.prevHash,
      hash: record.hash,
    })
    .execute();
  await trx.updateTable("provider_audit_head").set({ head: record.hash }).execute();
}

/** Up to `limit` records with seq above `afterSeq`, in sequence order. */
export async function listProviderAuditRecords(db: Executor, afterSeq: number, limit: number): Promise<ProviderAuditRecord[]> {
  const rows = await db.selectFrom("provider_audit_events").selectAll().where("seq", ">", afterSeq).orderBy("seq").limit(limit).execute();
  return rows.map((row) => ({
    seq: Number(row.seq),
    actor: row.actor,
    action: row.action,
    target: row.target,
    data: row.data,
    createdAt: row.created_at,
    prevHash: new Uint8Array(row.prev_hash),
    hash: new Uint8Array(row.hash),
  }));
}
