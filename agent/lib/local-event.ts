import { randomUUID } from "node:crypto";
import { EventSeverity } from "../../gen/agentgateway/v1/ingest_pb.js";
import type { EventRecord } from "./outbox.js";

/**
 * The line format of local events (docs/agent.md, "Local events"): one JSON object per line,
 * validated here before anything is stored, with the same limits the gateway applies.
 */

const SEVERITIES: Record<string, EventSeverity> = {
  debug: EventSeverity.DEBUG,
  info: EventSeverity.INFO,
  warn: EventSeverity.WARNING,
  warning: EventSeverity.WARNING,
  error: EventSeverity.ERROR,
  critical: EventSeverity.CRITICAL,
};
const TYPE_PATTERN = /^[A-Za-z_][A-Za-z0-9_.:/-]*$/;
const MAX_PAYLOAD = 1024 * 1024;
/** Longest accepted line: a 1 MiB payload in base64 plus the other fields. */
export const MAX_LINE_BYTES = 2 * 1024 * 1024;

/** Turns one parsed JSON line into an outbox record, or explains why not. */
export function parseLocalEvent(input: unknown, fallbackId: () => string = randomUUID): EventRecord | string {
  if (typeof input !== "object" || input === null || Array.isArray(input)) return "an event must be a JSON object";
  const o = input as Record<string, unknown>;
  if (typeof o.type !== "string" || o.type.length === 0 || o.type.length > 128 || !TYPE_PATTERN.test(o.type)) {
    return 'type: required, at most 128 characters matching ^[A-Za-z_][A-Za-z0-9_.:/-]*$ (e.g. "backup.finished")';
  }
  let severity = EventSeverity.INFO;
  if (o.severity !== undefined) {
    const s =
      typeof o.severity === "string"
        ? SEVERITIES[o.severity.toLowerCase()]
        : typeof o.severity === "number" && o.severity >= 1 && o.severity <= 5
          ? (o.severity as EventSeverity)
          : undefined;
    if (s === undefined) return "severity: one of debug, info, warning, error, critical";
    severity = s;
  }
  const message = o.message === undefined ? "" : o.message;
  if (typeof message !== "string" || message.length > 4096 || message.includes("\u0000")) return "message: a string of at most 4096 characters without NUL";
  const attributes: Record<string, string> = {};
  if (o.attributes !== undefined) {
    if (typeof o.attributes !== "object" || o.attributes === null || Array.isArray(o.attributes)) return "attributes: an object of string values";
    const entries = Object.entries(o.attributes as Record<string, unknown>);
    if (entries.length > 64) return "attributes: at most 64 pairs";
    for (const [k, v] of entries) {
      const value = typeof v === "string" ? v : typeof v === "number" || typeof v === "boolean" ? String(v) : undefined;
      if (value === undefined || k.length === 0 || k.length > 63 || value.length > 1024 || k.includes("\u0000") || value.includes("\u0000")) {
        return `attributes.${k}: keys 1-63 characters, values strings/numbers/booleans of at most 1024 characters`;
      }
      attributes[k] = value;
    }
  }
  let payload: string | undefined;
  if (o.payload_base64 !== undefined) {
    if (typeof o.payload_base64 !== "string") return "payload_base64: a base64 string";
    const bytes = Buffer.from(o.payload_base64, "base64");
    if (bytes.length > MAX_PAYLOAD) return "payload: at most 1 MiB";
    payload = bytes.toString("base64");
  } else if (o.payload !== undefined) {
    if (typeof o.payload !== "string") return "payload: a string (UTF-8), or use payload_base64";
    const bytes = Buffer.from(o.payload, "utf8");
    if (bytes.length > MAX_PAYLOAD) return "payload: at most 1 MiB";
    payload = bytes.toString("base64");
  }
  let ms = Date.now();
  if (o.occurred_at !== undefined) {
    const t = typeof o.occurred_at === "string" ? Date.parse(o.occurred_at) : typeof o.occurred_at === "number" ? o.occurred_at : Number.NaN;
    if (!Number.isFinite(t) || t < 0 || t > 253402300799000) return "occurred_at: an RFC 3339 time or epoch milliseconds";
    ms = t;
  }
  let id: string;
  if (o.id !== undefined) {
    if (typeof o.id !== "string" || o.id.length === 0 || o.id.length > 64 || o.id.includes("\u0000")) return "id: 1-64 characters";
    id = o.id;
  } else {
    id = fallbackId();
  }
  const record: EventRecord = { id, type: o.type, severity, message, attributes, s: Math.floor(ms / 1000), n: Math.round((ms % 1000) * 1_000_000) };
  if (payload !== undefined) record.payload = payload;
  return record;
}

/** The answer to one line: what the producer is told (serialized as a JSON line). */
export type LocalEventAnswer = { ok: true; id: string } | { ok: false; error: string /** storing failed: the same line may succeed later */; retry?: true };

/** The JSON line a producer reads back (the `retry` flag is internal). */
export function answerLine(answer: LocalEventAnswer): string {
  return JSON.stringify(answer.ok ? { ok: true, id: answer.id } : { ok: false, error: answer.error });
}
