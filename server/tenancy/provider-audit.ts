import type { Executor } from "../db/database.js";
import { type ChainVerification, verifyChain } from "../audit/verify.js";
import { auditRecordHash, GENESIS_HASH } from "../../client/protocol/audit-chain.js";
import { insertProviderAuditRecord, listProviderAuditRecords, nextProviderAuditSeq } from "./provider-audit-store.js";

/** The tenant id of the provider chain in the hashed canonical form: it belongs to no tenant. */
export const PROVIDER_CHAIN = "";

/** Who acted on the provider plane: a system key, or the gateway itself (first start). */
export type ProviderActor = { kind: "system_key"; keyId: string } | { kind: "system" };

/** One provider action to record. */
export interface ProviderAuditEntry {
  actor: ProviderActor;
  action: string;
  target: string;
  data?: Record<string, unknown>;
}

/**
 * Appends a record to the provider chain, hashed exactly as a tenant's chain record (RFC 8785
 * canonical JSON, SHA-256) with tenant_id "". Call it inside the transaction that makes the
 * change, so both commit or neither.
 */
export async function appendProviderAudit(trx: Executor, entry: ProviderAuditEntry): Promise<number> {
  const { seq, head } = await nextProviderAuditSeq(trx);
  const prevHash = seq === 1 ? GENESIS_HASH : head;
  const createdAt = new Date();
  const data = entry.data ?? {};
  const actor = entry.actor.kind === "system_key" ? `system_key:${entry.actor.keyId}` : "system";
  const hash = auditRecordHash({ tenantId: PROVIDER_CHAIN, seq, actor, action: entry.action, target: entry.target, data, createdAt, prevHash });
  await insertProviderAuditRecord(trx, { seq, actor, action: entry.action, target: entry.target, data, createdAt, prevHash, hash });
  return seq;
}

/** Recomputes the provider chain and reports the first broken link. */
export async function verifyProviderAuditChain(db: Executor): Promise<ChainVerification> {
  return verifyChain(PROVIDER_CHAIN, (fromSeq, limit) => listProviderAuditRecords(db, fromSeq - 1, limit));
}
