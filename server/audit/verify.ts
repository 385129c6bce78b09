import type { Executor } from "../db/database.js";
import { auditRecordsFrom, type ChainRecord } from "./audit-store.js";
import { auditRecordHash, GENESIS_HASH } from "../../client/protocol/audit-chain.js";

/** Outcome of walking a tenant's audit chain. */
export interface ChainVerification {
  ok: boolean;
  checked: number;
  firstBadSeq: number;
  message: string;
}


const BATCH = 1000;

/** Recomputes every record's hash and link, in batches so memory stays flat on long chains. */
export async function verifyAuditChain(db: Executor, tenantId: string): Promise<ChainVerification> {
  return verifyChain(tenantId, (fromSeq, limit) => auditRecordsFrom(db, tenantId, fromSeq, limit));
}

/**
 * Walks any chain hashed as docs/protocol.md ("Audit chain") says: a tenant's (`chainTenantId`
 * its id) or the provider's (""). `load` returns up to `limit` records from `fromSeq` on.
 */
export async function verifyChain(chainTenantId: string, load: (fromSeq: number, limit: number) => Promise<ChainRecord[]>): Promise<ChainVerification> {
  let prev: Uint8Array = GENESIS_HASH;
  let expectedSeq = 1;
  for (;;) {
    const rows = await load(expectedSeq, BATCH);
    for (const row of rows) {
      const seq = row.seq;
      const bad = (message: string): ChainVerification => ({ ok: false, checked: expectedSeq - 1, firstBadSeq: seq, message });
      if (seq !== expectedSeq) return bad(`record ${expectedSeq} is missing`);
      if (!Buffer.from(row.prevHash).equals(Buffer.from(prev))) return bad(`record ${seq} does not link to record ${seq - 1}`);
      const hash = auditRecordHash({
        tenantId: chainTenantId,
        seq,
        actor: row.actor,
        action: row.action,
        target: row.target,
        data: row.data,
        createdAt: row.createdAt,
        prevHash: prev,
      });
      if (!Buffer.from(row.hash).equals(Buffer.from(hash))) return bad(`record ${seq} was altered (hash mismatch)`);
      prev = hash;
      expectedSeq++;
    }
    if (rows.length < BATCH) return { ok: true, checked: expectedSeq - 1, firstBadSeq: 0, message: "chain intact" };
  }
}
