import type { Kysely } from "kysely";

// The retention sweep (server/workers/retention.ts) deletes by age in LIMITed batches; without
// an index each batch would scan the table from the start. B-tree rather than BRIN: deletes
// free space that new rows reuse, so physical order stops following received_at. Commands:
// partial, only acknowledged rows are ever swept. Sessions (one row per agent) need none;
// auth_challenges has its expiry index since 0001. Plain CREATE INDEX (migrations run in a
// transaction, CONCURRENTLY cannot): writes to these tables wait while it builds. IF NOT
// EXISTS so that an operator can build them beforehand with CREATE INDEX CONCURRENTLY under
// these names (docs/operations.md, "Upgrade").

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex("telemetry_points_received_idx").ifNotExists().on("telemetry_points").column("received_at").execute();
  await db.schema.createIndex("agent_events_received_idx").ifNotExists().on("agent_events").column("received_at").execute();
  await db.schema.createIndex("agent_commands_acked_idx").ifNotExists().on("agent_commands").column("acked_at").where("acked_at", "is not", null).execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(_db: Kysely<any>): Promise<void> {
  throw new Error("migrations are forward-only");
}
