import type { Executor } from "../db/database.js";

/** One record of a hash chain (a tenant's, or the provider's), as the chain walk reads it. */
export interface ChainRecord {
  seq: number;
  actor: string;
  action: string;
  target: string;
  data: Record<string, unknown>;
  createdAt: Date;
  prevHash: Uint8Array;
  hash: Uint8Array;
}

/** One stored audit record of a tenant's chain, as the services see it. */
export interface AuditRecord extends ChainRecord {
  tenantId: string;
}

/** Stores records of the chain in one statement. */
export async function insertAuditRecords(trx: Executor, records: readonly AuditRecord[]): Promise<void> {
  if (records.length === 0) return;
  await trx
    .insertInto("audit_events")
    .values(
      records.map((record) => ({
        tenant_id: record.tenantId,
        seq: record.seq,
        actor: record.actor,
        action: record.action,
        target: record.target,
        data: JSON.stringify(record.data),
        created_at: record.createdAt,
        prev_hash: record.prevHash,
        hash: record.hash,
      })),
    )
    .execute();
}

/** Up to `limit` records of the tenant after `afterSeq`, in sequence order, optionally of one action and/or one target. */
export async function listAuditRecords(
  db: Executor,
  query: { tenantId: string; afterSeq: number; action?: string; target?: string; limit: number },
): Promise<AuditRecord[]> {
  let q = db.selectFrom("audit_events").selectAll().where("tenant_id", "=", query.tenantId).where("seq", ">", query.afterSeq);
  if (query.action) q = q.where("action", "=", query.action);
  if (query.target) q = q.where("target", "=", query.target);
  const rows = await q.orderBy("seq").limit(query.limit).execute();
  return rows.map(toRecord);
}

/** Deletes a deleted tenant's chain (TenantService; the provider chain keeps its length and head hash). */
export async function deleteTenantAuditRecords(db: Executor, tenantId: string): Promise<void> {
  await db.deleteFrom("audit_events").where("tenant_id", "=", tenantId).execute();
}

/** Up to `limit` records of the tenant from `fromSeq` on (inclusive), in sequence order. */
export async function auditRecordsFrom(db: Executor, tenantId: string, fromSeq: number, limit: number): Promise<AuditRecord[]> {
  const rows = await db.selectFrom("audit_events").selectAll().where("tenant_id", "=", tenantId).where("seq", ">=", fromSeq).orderBy("seq").limit(limit).execute();
  return rows.map(toRecord);
}

type Row = {
  tenant_id: string; seq: string | number | bigint; actor: string; action: string; target: string;
  data: Record<string, unknown>; created_at: Date; prev_hash: Uint8Array; hash: Uint8Array;
};

function toRecord(row: Row): AuditRecord {
  return {
    tenantId: row.tenant_id,
    seq: Number(row.seq),
    actor: row.actor,
    action: row.action,
    target: row.target,
    data: row.data,
    createdAt: row.created_at,
    prevHash: new Uint8Array(row.prev_hash),
    hash: new Uint8Array(row.hash),
  };
}
