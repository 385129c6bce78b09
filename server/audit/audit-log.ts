import { sql } from "kysely";
import type { Executor } from "../db/database.js";
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
  const head = await trx
    .updateTable("tenants")
    .set({ audit_seq: sql`audit_seq + 1` })
    .where("id", "=", entry.tenantId)
    .returning(["audit_seq", "audit_head"])
    .executeTakeFirstOrThrow();
  const seq = Number(head.audit_seq);
  const prevHash = seq === 1 ? GENESIS_HASH : new Uint8Array(head.audit_head);
  const createdAt = new Date();
  const data = entry.data ?? {};
  const actor = actorString(entry.actor);
  const hash = auditRecordHash({ tenantId: entry.tenantId, seq, actor, action: entry.action, target: entry.target, data, createdAt, prevHash });
  await trx
    .insertInto("audit_events")
    .values({
      tenant_id: entry.tenantId,
      seq,
      actor,
      action: entry.action,
      target: entry.target,
      data: JSON.stringify(data),
      created_at: createdAt,
      prev_hash: prevHash,
      hash,
    })
    .execute();
  await trx.updateTable("tenants").set({ audit_head: hash }).where("id", "=", entry.tenantId).execute();
  return seq;
}
