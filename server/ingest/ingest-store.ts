import { type RawBuilder, sql } from "kysely";
import { deleteBatchBefore } from "../db/batch-delete.js";
import type { Executor } from "../db/database.js";
import { type Instant, micros, microsToSql } from "./timestamps.js";

/** A metric point as the ingest service hands it to storage. */
export interface PointInput {
  id: string;
  name: string;
  labels: Record<string, string>;
  value: number;
  observedAt: Instant;
}

/** An event as the ingest service hands it to storage. */
export interface EventInput {
  id: string;
  type: string;
  severity: number;
  message: string;
  attributes: Record<string, string>;
  payload: Uint8Array;
  occurredAt: Instant;
}

/**
 * Stores a batch of points in ONE statement; returns how many rows were new. Ids already stored
 * for the agent are skipped by the primary key. The batch must not repeat an id.
 *
 * The rows travel as ONE jsonb parameter, an array of `[id, name, labels, value, seconds,
 * micros]`: JSON.stringify is native code, while text-array parameters are escaped element by
 * element in JavaScript (and labels, JSON inside an array literal, twice), which made the
 * encoding the gateway's largest cost per point after validation. PostgreSQL parses the one
 * document and takes each row apart with `->`/`->>`. Instants are passed as whole seconds and
 * microseconds (exact in a double across the Timestamp range: `to_timestamp` of whole seconds,
 * plus the microseconds), not as text to parse. The statement text does not depend on the batch
 * size, so its plan is cached like any other.
 */
export async function insertPoints(db: Executor, tenantId: string, agentId: string, points: PointInput[]): Promise<number> {
  if (points.length === 0) return 0;
  const rows = JSON.stringify(points.map((p) => [p.id, p.name, p.labels, p.value, p.observedAt.seconds, p.observedAt.micros]));
  const { rows: counted } = await sql<{ n: number }>`
    WITH ins AS (
      INSERT INTO telemetry_points (tenant_id, agent_id, point_id, name, labels, value, observed_at)
      SELECT ${tenantId}::uuid, ${agentId}::uuid, p->>0, p->>1, p->2, (p->>3)::float8,
        to_timestamp((p->>4)::float8) + (p->>5)::int4 * interval '1 microsecond'
      FROM jsonb_array_elements(${rows}::jsonb) AS p
      ON CONFLICT (agent_id, point_id) DO NOTHING
      RETURNING 1
    )
    SELECT count(*)::int AS n FROM ins`.execute(db);
  return Number(counted[0]?.n ?? 0);
}

/** Stores a batch of events in ONE statement, like insertPoints. Payloads travel as base64 text (same on pg and PGlite). */
export async function insertEvents(db: Executor, tenantId: string, agentId: string, events: EventInput[]): Promise<number> {
  if (events.length === 0) return 0;
  const rows = JSON.stringify(
    events.map((e) => [
      e.id,
      e.type,
      e.severity,
      e.message,
      e.attributes,
      Buffer.from(e.payload.buffer, e.payload.byteOffset, e.payload.byteLength).toString("base64"),
      e.occurredAt.seconds,
      e.occurredAt.micros,
    ]),
  );
  const { rows: counted } = await sql<{ n: number }>`
    WITH ins AS (
      INSERT INTO agent_events (tenant_id, agent_id, event_id, type, severity, message, attributes, payload, occurred_at)
      SELECT ${tenantId}::uuid, ${agentId}::uuid, e->>0, e->>1, (e->>2)::int2, e->>3, e->4, decode(e->>5, 'base64'),
        to_timestamp((e->>6)::float8) + (e->>7)::int4 * interval '1 microsecond'
      FROM jsonb_array_elements(${rows}::jsonb) AS e
      ON CONFLICT (agent_id, event_id) DO NOTHING
      RETURNING 1
    )
    SELECT count(*)::int AS n FROM ins`.execute(db);
  return Number(counted[0]?.n ?? 0);
}

/** A time-ranged, newest-first read of one agent's rows. */
export interface RangeQuery {
  tenantId: string;
  agentId: string;
  /** Inclusive lower bound. */
  sinceMicros?: bigint;
  /** Exclusive upper bound. */
  untilMicros?: bigint;
  /** Keyset cursor: the last row of the previous page. */
  after?: { micros: bigint; id: string };
  limit: number;
  /**
   * Approximate byte budget of one page: a page stops early (and says there is more) rather
   * than grow past what clients accept by default. A single larger row is still returned.
   */
  maxBytes: number;
}

/** A page of rows and whether more match. */
export interface Page<T> {
  rows: T[];
  more: boolean;
}

/** A stored point; instants in microseconds since the epoch. */
export interface StoredPoint {
  id: string;
  name: string;
  labels: Record<string, string>;
  value: number;
  observedAtMicros: bigint;
  receivedAtMicros: bigint;
}

/** A stored event; instants in microseconds since the epoch. */
export interface StoredEvent {
  id: string;
  type: string;
  severity: number;
  message: string;
  attributes: Record<string, string>;
  payload: Uint8Array;
  occurredAtMicros: bigint;
  receivedAtMicros: bigint;
}

/** One agent's points, newest first (observed_at, then id, descending). */
export async function listPoints(db: Executor, query: RangeQuery & { name?: string }): Promise<Page<StoredPoint>> {
  const where = rangeConditions(query, sql.ref("observed_at"), sql.ref("point_id"));
  if (query.name) where.push(sql`name = ${query.name}`);
  const rows = await pageOf<{ point_id: string; name: string; labels: Record<string, string>; value: number; t_us: unknown; r_us: unknown }>(db, query, sql`
    SELECT point_id AS k, point_id, name, labels, value,
      (extract(epoch FROM observed_at) * 1000000)::bigint AS t_us,
      (extract(epoch FROM received_at) * 1000000)::bigint AS r_us,
      octet_length(point_id) + octet_length(name) + pg_column_size(labels) + 48 AS cost
    FROM telemetry_points
    WHERE ${sql.join(where, sql` AND `)}
    ORDER BY observed_at DESC, point_id DESC`);
  return {
    more: rows.more,
    rows: rows.rows.map((r) => ({
      id: r.point_id,
      name: r.name,
      labels: r.labels,
      value: Number(r.value),
      observedAtMicros: micros(r.t_us),
      receivedAtMicros: micros(r.r_us),
    })),
  };
}

/** One agent's events, newest first (occurred_at, then id, descending). */
export async function listEvents(db: Executor, query: RangeQuery): Promise<Page<StoredEvent>> {
  const where = rangeConditions(query, sql.ref("occurred_at"), sql.ref("event_id"));
  const rows = await pageOf<{
    event_id: string; type: string; severity: number; message: string; attributes: Record<string, string>; payload: Uint8Array; t_us: unknown; r_us: unknown;
  }>(db, query, sql`
    SELECT event_id AS k, event_id, type, severity, message, attributes, payload,
      (extract(epoch FROM occurred_at) * 1000000)::bigint AS t_us,
      (extract(epoch FROM received_at) * 1000000)::bigint AS r_us,
      octet_length(event_id) + octet_length(type) + octet_length(message) + pg_column_size(attributes) + octet_length(payload) + 64 AS cost
    FROM agent_events
    WHERE ${sql.join(where, sql` AND `)}
    ORDER BY occurred_at DESC, event_id DESC`);
  return {
    more: rows.more,
    rows: rows.rows.map((r) => ({
      id: r.event_id,
      type: r.type,
      severity: Number(r.severity),
      message: r.message,
      attributes: r.attributes,
      payload: new Uint8Array(r.payload),
      occurredAtMicros: micros(r.t_us),
      receivedAtMicros: micros(r.r_us),
    })),
  };
}

function rangeConditions(query: RangeQuery, time: RawBuilder<unknown>, id: RawBuilder<unknown>): RawBuilder<unknown>[] {
  const where = [sql`agent_id = ${query.agentId}::uuid`, sql`tenant_id = ${query.tenantId}::uuid`];
  if (query.sinceMicros !== undefined) where.push(sql`${time} >= ${microsToSql(query.sinceMicros)}::timestamptz`);
  if (query.untilMicros !== undefined) where.push(sql`${time} < ${microsToSql(query.untilMicros)}::timestamptz`);
  // A row comparison in the index's order, so the scan starts right after the cursor.
  if (query.after) where.push(sql`(${time}, ${id}) < (${microsToSql(query.after.micros)}::timestamptz, ${query.after.id})`);
  return where;
}

/**
 * Runs `inner` (ordered newest first, selecting the sort key as `t_us` and `k`) with LIMIT limit+1 and cuts the result where the running byte
 * cost passes the budget. `more` is true when rows were left out for either reason.
 */
async function pageOf<R>(db: Executor, query: RangeQuery, inner: RawBuilder<unknown>): Promise<{ rows: R[]; more: boolean }> {
  const { rows } = await sql<R & { matched: unknown }>`
    SELECT * FROM (
      SELECT i.*,
        row_number() OVER w AS rn,
        sum(i.cost) OVER w AS running,
        count(*) OVER () AS matched
      FROM (${inner} LIMIT ${query.limit + 1}) i
      WINDOW w AS (ORDER BY i.t_us DESC, i.k DESC ROWS UNBOUNDED PRECEDING)
    ) x
    WHERE x.rn <= ${query.limit} AND (x.rn = 1 OR x.running <= ${query.maxBytes})
    ORDER BY x.rn`.execute(db);
  const matched = rows.length > 0 ? Number(rows[0]?.matched) : 0;
  return { rows, more: matched > rows.length };
}

// Retention (server/workers/retention.ts, batched by server/db/batch-delete.ts). By received_at
// (the server's clock), not the agent's observed_at: an agent's clock must not decide what is kept.

/** Deletes at most `limit` telemetry points received before `before`; returns how many. */
export async function deleteTelemetryReceivedBefore(db: Executor, before: Date, limit: number): Promise<number> {
  return await deleteBatchBefore(db, { table: "telemetry_points", column: "received_at" }, before, limit);
}

/** Deletes at most `limit` agent events received before `before`; returns how many. */
export async function deleteEventsReceivedBefore(db: Executor, before: Date, limit: number): Promise<number> {
  return await deleteBatchBefore(db, { table: "agent_events", column: "received_at" }, before, limit);
}
