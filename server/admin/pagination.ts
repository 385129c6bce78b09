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

/** Clamps a requested page size: 0 means the default. */
export function pageSize(requested: number, fallback: number, max: number): number {
  if (!requested) return fallback;
  return Math.min(requested, max);
}
