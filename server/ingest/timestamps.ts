import { create } from "@bufbuild/protobuf";
import { type Timestamp, TimestampSchema } from "@bufbuild/protobuf/wkt";

// Agent clocks speak google.protobuf.Timestamp (nanoseconds); PostgreSQL keeps microseconds; a
// JS Date only milliseconds. Ingest passes instants as microsecond strings both ways, so what an
// agent uploaded reads back exactly (to the microsecond) and keyset page tokens never fall
// between two rows of the same millisecond.

/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range google.protobuf.Timestamp allows. */
const MIN_SECONDS = -62_135_596_800n;
const MAX_SECONDS = 253_402_300_799n;

/** Microseconds since the epoch of a Timestamp, or undefined when it is outside the valid range. */
export function timestampMicros(ts: Timestamp): bigint | undefined {
  if (ts.seconds < MIN_SECONDS || ts.seconds > MAX_SECONDS || ts.nanos < 0 || ts.nanos > 999_999_999) return undefined;
  return ts.seconds * 1_000_000n + BigInt(Math.floor(ts.nanos / 1000));
}

/**
 * The SQL literal of a Timestamp (UTC, microseconds), or undefined when it is outside the valid
 * range. The upload hot path: plain number arithmetic, no BigInt (seconds × 1000 stays exact).
 */
export function timestampToSql(ts: Timestamp): string | undefined {
  const seconds = Number(ts.seconds);
  if (!(seconds >= MIN_SECONDS_N && seconds <= MAX_SECONDS_N) || !(ts.nanos >= 0 && ts.nanos <= 999_999_999)) return undefined;
  const iso = new Date(seconds * 1000).toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z
  const micros = Math.floor(ts.nanos / 1000);
  return `${iso.slice(0, 20)}${micros >= 100_000 ? micros : String(micros).padStart(6, "0")}Z`;
}

/** An instant as the upload statements take it: whole seconds since the epoch and the microseconds after them. */
export interface Instant {
  seconds: number;
  /** 0 to 999999. */
  micros: number;
}

/**
 * A Timestamp as an Instant (nanoseconds truncated to microseconds), or undefined when it is
 * outside the valid range. Plain numbers: seconds of the valid range are exact in a double.
 */
export function timestampToInstant(ts: Timestamp): Instant | undefined {
  const seconds = Number(ts.seconds);
  if (!(seconds >= MIN_SECONDS_N && seconds <= MAX_SECONDS_N) || !(ts.nanos >= 0 && ts.nanos <= 999_999_999)) return undefined;
  return { seconds, micros: Math.floor(ts.nanos / 1000) };
}

const MIN_SECONDS_N = Number(MIN_SECONDS);
const MAX_SECONDS_N = Number(MAX_SECONDS);

/** Whether microseconds since the epoch fall in the range google.protobuf.Timestamp allows. */
export function isValidMicros(micros: bigint): boolean {
  return micros >= MIN_SECONDS * 1_000_000n && micros <= MAX_SECONDS * 1_000_000n + 999_999n;
}

/** A Timestamp from microseconds since the epoch. */
export function timestampFromMicros(micros: bigint): Timestamp {
  let seconds = micros / 1_000_000n;
  let rest = micros % 1_000_000n;
  if (rest < 0n) {
    seconds -= 1n;
    rest += 1_000_000n;
  }
  return create(TimestampSchema, { seconds, nanos: Number(rest) * 1000 });
}

/** An ISO-8601 UTC literal with microseconds that PostgreSQL parses as timestamptz. */
export function microsToSql(micros: bigint): string {
  let seconds = micros / 1_000_000n;
  let rest = micros % 1_000_000n;
  if (rest < 0n) {
    seconds -= 1n;
    rest += 1_000_000n;
  }
  const iso = new Date(Number(seconds) * 1000).toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z
  return `${iso.slice(0, 19)}.${rest.toString().padStart(6, "0")}Z`;
}

/** Microseconds from a value selected as `(extract(epoch from t) * 1000000)::bigint` (pg: string, PGlite: bigint). */
export function micros(value: unknown): bigint {
  return BigInt(value as string | number | bigint);
}
