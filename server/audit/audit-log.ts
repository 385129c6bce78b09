import type { Executor } from "../db/database.js";
import { nextAuditSeq, setAuditHead } from "../tenancy/tenant-store.js";
import { insertAuditRecord } from "./audit-store.js";
import { auditRecordHash, GENESIS_HASH } from "../../client/protocol/audit-chain.js";

/** Who caused a change: an operator key, an agent, or the gateway itself. */
export type Actor = { kind: "operator"; keyId: string } | { kind: "agent"; agentId: string } | { kind: "system" };

/** One state change to record. */
export interface AuditEntry {
  tenantId: string;
  actor: Actor;
  action: string;
  target: string;
  data?: Record<string, unknown>;
}

/** "operator:<id>", "agent:<id>" or "system", as stored and shown. */
export function actorString(actor: Actor): string {
  if (actor.kind === "operator") return `operator:${actor.keyId}`;
  if (actor.kind === "agent") return `agent:${actor.agentId}`;
  return "system";
}

/**
 * Appends a record to the tenant's hash chain. Call it inside the transaction that makes the
 * change, so the record and the change commit or roll back together. The UPDATE on the tenant
 * row takes its lock, which orders concurrent writers of one tenant without blocking others.
 */
export async function appendAudit(trx: Executor, entry: AuditEntry): Promise<number> {
  const { seq, head } = await nextAuditSeq(trx, entry.tenantId);
  const prevHash = seq === 1 ? GENESIS_HASH : head;
  const createdAt = new Date();
  const data = entry.data ?? {};
  const actor = actorString(entry.actor);
  const hash = auditRecordHash({ tenantId: entry.tenantId, seq, actor, action: entry.action, target: entry.target, data, createdAt, prevHash });
  await insertAuditRecord(trx, { tenantId: entry.tenantId, seq, actor, action: entry.action, target: entry.target, data, createdAt, prevHash, hash });
  await setAuditHead(trx, entry.tenantId, hash);
  return seq;
}
