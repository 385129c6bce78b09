import { type Kysely, sql } from "kysely";

// Frozen in time: never edit a migration that has landed; add a new one.
//
// Ingest tables. The primary key (agent_id, <client id>) makes uploads idempotent: a retried
// batch hits ON CONFLICT DO NOTHING. There are no foreign keys on these tables on purpose: the
// agent id comes from a session that was resolved against `agents`, so a reference check would
// add no safety, only a per-row trigger on the hottest write path.

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("telemetry_points")
    .addColumn("tenant_id", "uuid", (c) => c.notNull())
    .addColumn("agent_id", "uuid", (c) => c.notNull())
    .addColumn("point_id", "text", (c) => c.notNull())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("labels", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn("value", "double precision", (c) => c.notNull())
    .addColumn("observed_at", "timestamptz", (c) => c.notNull())
    .addColumn("received_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("telemetry_points_pk", ["agent_id", "point_id"])
    .execute();
  // Reads are "newest first" per agent with keyset pagination on (observed_at, point_id).
  await sql`CREATE INDEX telemetry_points_agent_time_idx ON telemetry_points (agent_id, observed_at DESC, point_id DESC)`.execute(db);

  await db.schema
    .createTable("agent_events")
    .addColumn("tenant_id", "uuid", (c) => c.notNull())
    .addColumn("agent_id", "uuid", (c) => c.notNull())
    .addColumn("event_id", "text", (c) => c.notNull())
    .addColumn("type", "text", (c) => c.notNull())
    .addColumn("severity", "smallint", (c) => c.notNull())
    .addColumn("message", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("attributes", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn("payload", "bytea", (c) => c.notNull().defaultTo(sql`'\\x'::bytea`))
    .addColumn("occurred_at", "timestamptz", (c) => c.notNull())
    .addColumn("received_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("agent_events_pk", ["agent_id", "event_id"])
    .execute();
  await sql`CREATE INDEX agent_events_agent_time_idx ON agent_events (agent_id, occurred_at DESC, event_id DESC)`.execute(db);

  // The liveness the sweeper last recorded, so it can detect (and audit) transitions. Listing
  // still derives liveness from last_seen_at; this column only remembers what was announced.
  await db.schema
    .alterTable("agents")
    .addColumn("liveness", "text", (c) => c.notNull().defaultTo("OFFLINE").check(sql`liveness in ('ONLINE', 'STALE', 'OFFLINE')`))
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(_db: Kysely<any>): Promise<void> {
  throw new Error("migrations are forward-only");
}
