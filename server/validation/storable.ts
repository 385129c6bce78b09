import { type DescField, type DescMessage, type Message, ScalarType } from "@bufbuild/protobuf";
import { isReflectMessage, reflect, type ReflectMessage } from "@bufbuild/protobuf/reflect";

/**
 * The values PostgreSQL cannot store, checked in every field of every request, so that none
 * reaches a statement (where it fails the whole statement — for the coalesced heartbeat and
 * ack writes, every agent's row in the batch) and every one is answered InvalidArgument naming
 * the field. protovalidate rules in the protos say what a field means; this says what any field
 * of its type can never be, so a new field or RPC is covered without a new rule.
 *
 * - strings: no NUL (text and jsonb cannot hold U+0000), no unpaired surrogate (no UTF-8 form);
 * - unsigned 32-bit integers: at most 2^31 - 1 (PostgreSQL `integer`), unsigned 64-bit at most
 *   2^63 - 1 (`bigint`);
 * - doubles and floats: finite (jsonb has no NaN or infinities, and they are never meaningful);
 * - enums: a value the enum defines (proto3 enums are open; an unknown number has no column value);
 * - google.protobuf.Timestamp: 0001-01-01 to 9999-12-31 with nanos in [0, 1e9), the well-known
 *   type's own range; google.protobuf.Duration: ±10,000 years with nanos of the same sign.
 */

/** Where in the request a value is, and what is wrong with it. */
export interface Unstorable {
  path: string;
  problem: string;
}

/** String.prototype.isWellFormed (ES2024, Node 20) is newer than the compiler's lib. */
type WellFormedCheck = string & { isWellFormed(): boolean };

const MAX_INT4 = 2 ** 31 - 1;
const MAX_INT8 = 2n ** 63n - 1n;
const MIN_TIMESTAMP_SECONDS = -62_135_596_800n; // 0001-01-01T00:00:00Z
const MAX_TIMESTAMP_SECONDS = 253_402_300_799n; // 9999-12-31T23:59:59Z
const MAX_DURATION_SECONDS = 315_576_000_000n;
/** Deeper than any request the protos define; a recursive Struct deeper than this is refused. */
const MAX_DEPTH = 32;

/** The first value in `message` that cannot be stored, or undefined when all can. */
export function findUnstorable(schema: DescMessage, message: Message): Unstorable | undefined {
  return walk(reflect(schema, message), "", 0);
}

// Paths are built only for a value found wrong or a message walked into: a valid upload of
// 1,000 points has ~10,000 scalar values, and naming each one would cost more than checking it.

function walk(msg: ReflectMessage, path: string, depth: number): Unstorable | undefined {
  if (depth > MAX_DEPTH) return { path: path || msg.desc.name, problem: `nests deeper than ${MAX_DEPTH} levels` };
  const wkt = wellKnown(msg, path);
  if (wkt !== null) return wkt;
  for (const field of msg.fields) {
    if (!msg.isSet(field)) continue;
    const problem = checkField(msg, field, path, depth);
    if (problem) return problem;
  }
  return undefined;
}

function fieldPath(path: string, field: DescField): string {
  return path ? `${path}.${field.name}` : field.name;
}

function checkField(msg: ReflectMessage, field: DescField, path: string, depth: number): Unstorable | undefined {
  switch (field.fieldKind) {
    case "scalar":
    case "enum": {
      const problem = field.fieldKind === "scalar" ? scalar(field.scalar, msg.get(field)) : enumValue(field.enum.values, msg.get(field) as number);
      return problem === undefined ? undefined : { path: fieldPath(path, field), problem };
    }
    case "message":
      return walk(msg.get(field) as ReflectMessage, fieldPath(path, field), depth + 1);
    case "list": {
      let i = -1;
      for (const item of msg.get(field)) {
        i += 1;
        if (field.listKind === "message") {
          const problem = isReflectMessage(item) ? walk(item, `${fieldPath(path, field)}[${i}]`, depth + 1) : undefined;
          if (problem) return problem;
          continue;
        }
        const problem = field.listKind === "scalar" ? scalar(field.scalar, item) : enumValue(field.enum.values, item as number);
        if (problem) return { path: `${fieldPath(path, field)}[${i}]`, problem };
      }
      return undefined;
    }
    case "map": {
      for (const [key, value] of msg.get(field)) {
        const keyProblem = scalar(field.mapKey, key);
        // The key itself may be the bad value: never echo it, name the map.
        if (keyProblem) return { path: `${fieldPath(path, field)} (a key)`, problem: keyProblem };
        if (field.mapKind === "message") {
          const problem = isReflectMessage(value) ? walk(value, mapValuePath(path, field, key), depth + 1) : undefined;
          if (problem) return problem;
          continue;
        }
        const problem = field.mapKind === "scalar" ? scalar(field.scalar, value) : enumValue(field.enum.values, value as number);
        if (problem) return { path: mapValuePath(path, field, key), problem };
      }
      return undefined;
    }
  }
}

/** A map value's path, naming its key unless the key is long. */
function mapValuePath(path: string, field: DescField, key: unknown): string {
  const keyText = typeof key === "string" ? JSON.stringify(key) : String(key);
  return `${fieldPath(path, field)}[${keyText.length <= 64 ? keyText : "…"}]`;
}

/** What is wrong with a scalar value no column can store, or undefined. */
function scalar(type: ScalarType, value: unknown): string | undefined {
  switch (type) {
    case ScalarType.STRING:
      if (typeof value !== "string") return undefined;
      if (value.includes("\u0000")) return "must not contain NUL characters";
      // A lone surrogate (possible from a JSON request) has no UTF-8 form: jsonb refuses it, text would store U+FFFD.
      return (value as WellFormedCheck).isWellFormed() ? undefined : "must be valid Unicode (no unpaired surrogates)";
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return (value as number) > MAX_INT4 ? `must be at most ${MAX_INT4}` : undefined;
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return BigInt(value as bigint | string | number) > MAX_INT8 ? `must be at most ${MAX_INT8}` : undefined;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return Number.isFinite(value as number) ? undefined : "must be a finite number";
    default:
      return undefined;
  }
}

function enumValue(values: readonly { number: number }[], value: number): string | undefined {
  return values.some((v) => v.number === value) ? undefined : `${value} is not a defined value`;
}

/** Range checks of the well-known types whose values become timestamps and intervals; null for other types. */
function wellKnown(msg: ReflectMessage, path: string): Unstorable | undefined | null {
  const name = msg.desc.typeName;
  if (name !== "google.protobuf.Timestamp" && name !== "google.protobuf.Duration") return null;
  const seconds = BigInt(msg.get(msg.desc.fields[0] as DescField) as bigint);
  const nanos = msg.get(msg.desc.fields[1] as DescField) as number;
  const at = path || name;
  if (name === "google.protobuf.Timestamp") {
    if (seconds < MIN_TIMESTAMP_SECONDS || seconds > MAX_TIMESTAMP_SECONDS) return { path: at, problem: "must be between 0001-01-01 and 9999-12-31" };
    if (nanos < 0 || nanos > 999_999_999) return { path: at, problem: "nanos must be in [0, 999999999]" };
    return undefined;
  }
  if (seconds < -MAX_DURATION_SECONDS || seconds > MAX_DURATION_SECONDS) return { path: at, problem: "must be within ±10000 years" };
  if (nanos < -999_999_999 || nanos > 999_999_999 || (seconds > 0n && nanos < 0) || (seconds < 0n && nanos > 0)) {
    return { path: at, problem: "nanos must be within ±999999999 and have the sign of seconds" };
  }
  return undefined;
}
