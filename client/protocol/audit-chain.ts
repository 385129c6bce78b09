import { createHash } from "node:crypto";

/**
 * The audit hash chain, as docs/protocol.md ("Audit chain") specifies it. It lives in the
 * client layer because verifying an exported chain must not need the gateway: the CLI, the web
 * admin and a SIEM-side script can all recompute it from `ListAuditEvents` alone.
 */

/** The fields that a record's hash covers. */
export interface AuditRecordContent {
  tenantId: string;
  seq: number;
  actor: string;
  action: string;
  target: string;
  /** JSON data: what `google.protobuf.Struct` can carry (no undefined inside arrays, finite numbers). */
  data: Readonly<Record<string, unknown>>;
  createdAt: Date;
  prevHash: Uint8Array;
}

/** 32 zero bytes: the previous hash of a tenant's first record. */
export const GENESIS_HASH = new Uint8Array(32);

/** The exact UTF-8 text whose SHA-256 is the record's hash. */
export function auditCanonicalForm(record: AuditRecordContent): string {
  return canonicalJson({
    action: record.action,
    actor: record.actor,
    created_at: record.createdAt.toISOString(),
    data: record.data,
    prev_hash: Buffer.from(record.prevHash).toString("hex"),
    seq: record.seq,
    target: record.target,
    tenant_id: record.tenantId,
  });
}

/** SHA-256 over the record's canonical form. */
export function auditRecordHash(record: AuditRecordContent): Uint8Array {
  return new Uint8Array(createHash("sha256").update(auditCanonicalForm(record), "utf8").digest());
}

/**
 * JSON in the RFC 8785 (JCS) form: no whitespace; object members sorted by their names' UTF-16
 * code units (what `<` on JS strings does); strings escaped as ECMAScript's JSON.stringify
 * escapes them; numbers in ECMAScript's shortest round-trip form (`1`, `1.5`, `1e+21`, `1e-7`,
 * `-0` as `0`). Members whose value is undefined are left out, as JSON.stringify does; anything
 * a JSON document cannot hold (a non-finite number, undefined in an array, a bigint, a
 * function) throws, so a record that could not be verified elsewhere is never written.
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
    case "boolean":
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) throw new TypeError(`audit data cannot hold the number ${value}`);
      return JSON.stringify(value);
    case "object":
      break;
    default:
      throw new TypeError(`audit data cannot hold a ${typeof value}`);
  }
  if (Array.isArray(value)) {
    return `[${value
      .map((item) => {
        if (item === undefined) throw new TypeError("audit data cannot hold undefined in an array");
        return canonicalJson(item);
      })
      .join(",")}]`;
  }
  const proto = Object.getPrototypeOf(value);
  // A Date or Map would be written to the database by JSON.stringify as something else than
  // what is hashed here; only plain objects are JSON objects.
  if (proto !== Object.prototype && proto !== null) throw new TypeError("audit data holds only plain objects, arrays, strings, finite numbers, booleans and null");
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}
