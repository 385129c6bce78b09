import type { Executor } from "../db/database.js";
import { reserveAuditSeqs, setAuditHead } from "../tenancy/tenant-store.js";
import { insertAuditRecords } from "./audit-store.js";
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
  const [seq] = await appendAuditBatch(trx, [entry]);
  if (seq === undefined) throw new Error("unreachable: one entry, one sequence number");
  return seq;
}

/**
 * Appends many records (of one or several tenants) in three statements per tenant, whatever
 * their number: the tenant's row lock — which every audited change of the tenant waits for — is
 * held for a few round trips, not three per record. Tenants are taken in id order, so two
 * batches cannot deadlock. Returns each entry's sequence number, in the entries' order.
 */
export async function appendAuditBatch(trx: Executor, entries: readonly AuditEntry[]): Promise<number[]> {
  const byTenant = new Map<string, number[]>();
  entries.forEach((entry, i) => {
    const indexes = byTenant.get(entry.tenantId);
    if (indexes) indexes.push(i);
    else byTenant.set(entry.tenantId, [i]);
  });
  const seqs: number[] = new Array(entries.length);
  const createdAt = new Date();
  for (const tenantId of [...byTenant.keys()].sort()) {
    const indexes = byTenant.get(tenantId) ?? [];
    const { first, head } = await reserveAuditSeqs(trx, tenantId, indexes.length);
    let prevHash = first === 1 ? GENESIS_HASH : head;
    const records = indexes.map((index, k) => {
      const entry = entries[index] as AuditEntry;
      const seq = first + k;
      const data = entry.data ?? {};
      const actor = actorString(entry.actor);
      const hash = auditRecordHash({ tenantId, seq, actor, action: entry.action, target: entry.target, data, createdAt, prevHash });
      const record = { tenantId, seq, actor, action: entry.action, target: entry.target, data, createdAt, prevHash, hash };
      prevHash = hash;
      seqs[index] = seq;
      return record;
    });
    await insertAuditRecords(trx, records);
    await setAuditHead(trx, tenantId, prevHash);
  }
  return seqs;
}
