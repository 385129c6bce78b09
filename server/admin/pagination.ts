import { InvalidInputError } from "../errors/errors.js";

/** Opaque page tokens: base64url JSON of the last row's sort key. Clients must not parse them. */
export function encodePageToken(key: Record<string, string | number>): string {
  return Buffer.from(JSON.stringify(key)).toString("base64url");
}

/** Decodes a page token produced by encodePageToken; a tampered one is INVALID_ARGUMENT. */
export function decodePageToken<T extends Record<string, string | number>>(token: string, fields: (keyof T)[]): T | undefined {
  if (!token) return undefined;
  try {
    const value = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as T;
    if (typeof value === "object" && value && fields.every((f) => typeof value[f] === "string" || typeof value[f] === "number")) return value;
  } catch {
    // fall through
  }
  throw new InvalidInputError("page_token is not valid: pass next_page_token from a previous response unchanged");
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const INVALID = "page_token is not valid: pass next_page_token from a previous response unchanged";

/** The position after a row in a list ordered by id: every list keyed by id alone uses it. */
export function idPageToken(id: string): string {
  return encodePageToken({ i: id });
}

/** Decodes idPageToken; undefined for an empty token, INVALID_ARGUMENT for anything else wrong. */
export function decodeIdPageToken(token: string): string | undefined {
  const key = decodePageToken<{ i: string }>(token, ["i"]);
  if (key === undefined) return undefined;
  if (typeof key.i !== "string" || !UUID.test(key.i)) throw new InvalidInputError(INVALID);
  return key.i;
}

/** The position after a row in a list ordered newest first by (created_at, id). */
export function createdPageToken(row: { createdAt: Date; id: string }): string {
  return encodePageToken({ c: row.createdAt.toISOString(), i: row.id });
}

/** Decodes createdPageToken; undefined for an empty token, INVALID_ARGUMENT for anything else wrong. */
export function decodeCreatedPageToken(token: string): { createdAt: Date; id: string } | undefined {
  const key = decodePageToken<{ c: string; i: string }>(token, ["c", "i"]);
  if (key === undefined) return undefined;
  const createdAt = new Date(String(key.c));
  if (typeof key.c !== "string" || Number.isNaN(createdAt.getTime()) || typeof key.i !== "string" || !UUID.test(key.i)) throw new InvalidInputError(INVALID);
  return { createdAt, id: key.i };
}

/** Clamps a requested page size: 0 means the default. */
export function pageSize(requested: number, fallback: number, max: number): number {
  if (!requested) return fallback;
  return Math.min(requested, max);
}
