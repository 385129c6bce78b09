/**
 * Flag values, checked at the edge with messages naming the flag, on top of the shared parsers
 * of client/values.ts; and the paging loop shared by the list commands.
 */
import { parseDurationMs, parseLabels } from "../client/values.js";
import { usage } from "./errors.js";

/** A non-negative integer flag, at most `max`. */
export function intFlag(flag: string, value: string | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) > max) throw usage(`${flag} must be a whole number from 0 to ${max}, got "${value}"`);
  return Number(value);
}

/** A duration flag ("30s", "15m", "1h", "2d") in ms; undefined when absent. */
export function durationFlag(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseDurationMs(value);
  if (ms === undefined) throw usage(`${flag} must be a duration like 30s, 15m, 1h or 2d, got "${value}"`);
  return ms;
}

/** A "k=v,k2=v2" flag with the protocol's label rules. */
export function labelsFlag(flag: string, value: string | string[] | undefined): Record<string, string> {
  const values = value === undefined ? [] : Array.isArray(value) ? value : [value];
  try {
    return Object.assign({}, ...values.map((v) => parseLabels(v))) as Record<string, string>;
  } catch (err) {
    throw usage(`${flag}: ${(err as Error).message}`);
  }
}

/** A point in time: an RFC 3339 timestamp, or a duration meaning "that long ago" ("10m"). */
export function timeFlag(flag: string, value: string | undefined, now: Date = new Date()): Date | undefined {
  if (value === undefined) return undefined;
  const ms = parseDurationMs(value);
  if (ms !== undefined) return new Date(now.getTime() - ms);
  if (/^\d{4}-\d\d-\d\d/.test(value)) {
    const at = new Date(value);
    if (!Number.isNaN(at.getTime())) return at;
  }
  throw usage(`${flag} must be a duration ago (10m, 2h) or a time like 2026-05-01T12:00:00Z, got "${value}"`);
}

/** A UUID argument (the gateway's IDs), checked before any call. */
export function idArg(what: string, value: string | undefined): string {
  if (!value || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value)) {
    throw usage(`${what} must be an ID like 6f1c2d3e-…, got "${value ?? ""}"`);
  }
  return value.toLowerCase();
}

/** One page of a list RPC. */
export interface Page<T> {
  items: T[];
  next: string;
}

/**
 * Follows page tokens until `limit` items passed `keep` (0: no limit) or the pages end.
 * Returns the kept items and the token of the page after the last one read ("" at the end).
 */
export async function collectPages<T>(
  fetch: (pageToken: string, pageSize: number) => Promise<Page<T>>,
  limit: number,
  maxPageSize: number,
  keep: (item: T) => boolean = () => true,
): Promise<{ items: T[]; next: string }> {
  const items: T[] = [];
  let token = "";
  // Bounded: a gateway handing out page tokens forever still ends the loop.
  for (let pages = 0; pages < 100_000; pages++) {
    const want = limit === 0 ? maxPageSize : Math.min(maxPageSize, limit - items.length);
    const page = await fetch(token, want);
    for (const item of page.items) if (keep(item) && (limit === 0 || items.length < limit)) items.push(item);
    token = page.next;
    if (!token || (limit !== 0 && items.length >= limit)) break;
  }
  return { items, next: token };
}
