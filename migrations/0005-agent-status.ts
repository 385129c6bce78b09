import type { Kysely } from "kysely";

// What the agent says about itself in heartbeats: its own health status and uptime.

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable("agents")
    .addColumn("reported_status", "text", (c) => c.notNull().defaultTo("UNSPECIFIED"))
    .addColumn("uptime_seconds", "bigint", (c) => c.notNull().defaultTo(0))
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(_db: Kysely<any>): Promise<void> {
  throw new Error("migrations are forward-only");
}
