import { type Kysely, sql } from "kysely";

// Commands for agents, persisted before they are sent and kept until acknowledged.

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  // Per-agent sequence allocator: UPDATE … RETURNING hands out numbers under the row lock.
  await db.schema.alterTable("agents").addColumn("command_seq", "bigint", (c) => c.notNull().defaultTo(0)).execute();
  await db.schema
    .createTable("agent_commands")
    .addColumn("agent_id", "uuid", (c) => c.notNull().references("agents.id"))
    .addColumn("sequence", "bigint", (c) => c.notNull())
    .addColumn("tenant_id", "uuid", (c) => c.notNull().references("tenants.id"))
    .addColumn("command_id", "uuid", (c) => c.notNull().unique())
    .addColumn("kind", "text", (c) => c.notNull())
    // What the command belongs to (e.g. the rollout id), so it can be withdrawn while unsent.
    .addColumn("ref", "text")
    // The serialized agentgateway.v1.Command (payload only; sequence and id are added on send).
    .addColumn("body", "bytea", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("acked_at", "timestamptz")
    .addColumn("ack_status", "text", (c) => c.check(sql`ack_status in ('OK', 'FAILED', 'UNSUPPORTED')`))
    .addColumn("ack_reason", "text")
    .addPrimaryKeyConstraint("agent_commands_pk", ["agent_id", "sequence"])
    .execute();
  // Redelivery reads only what is still unacknowledged.
  await db.schema
    .createIndex("agent_commands_unacked_idx")
    .on("agent_commands")
    .columns(["agent_id", "sequence"])
    .where(sql.ref("acked_at"), "is", null)
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(_db: Kysely<any>): Promise<void> {
  throw new Error("migrations are forward-only");
}
