import { createHash } from "node:crypto";

/** The fields that a record's hash covers. */
export interface AuditRecordContent {
  tenantId: string;
  seq: number;
  actor: string;
  action: string;
  target: string;
  data: Record<string, unknown>;
  createdAt: Date;
  prevHash: Uint8Array;
}

/** 32 zero bytes: the previous hash of a tenant's first record. */
export const GENESIS_HASH = new Uint8Array(32);

/**
 * SHA-256 over the record's canonical JSON (keys sorted at every level, timestamps in ISO 8601
 * UTC, bytes as lowercase hex). Documented in docs/protocol.md, "Audit chain", so anyone can
 * verify an export without our code.
 */
export function auditRecordHash(record: AuditRecordContent): Uint8Array {
  const canonical = canonicalJson({
    action: record.action,
    actor: record.actor,
    created_at: record.createdAt.toISOString(),
    data: record.data,
    prev_hash: Buffer.from(record.prevHash).toString("hex"),
    seq: record.seq,
    target: record.target,
    tenant_id: record.tenantId,
  });
  return new Uint8Array(createHash("sha256").update(canonical).digest());
}

/** JSON with object keys sorted recursively, no whitespace. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}
