import { type Kysely, sql } from "kysely";

// Tenant-wide notices (a peer revocation) become ONE row, not one row per agent, and every
// command of a tenant takes its sequence from one per-tenant counter, so a revocation among
// 10,000 agents writes a constant number of rows. Sequences stay strictly increasing per agent
// (they now have gaps, which docs/protocol.md always allowed).

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  // The per-tenant sequence allocator: INSERT … ON CONFLICT DO UPDATE … RETURNING hands out the
  // next number under the counter row's lock, held until commit, so commands of one tenant
  // commit in sequence order (a stream never sees 11 before 10 commits).
  await db.schema
    .createTable("command_counters")
    .addColumn("tenant_id", "uuid", (c) => c.primaryKey().references("tenants.id"))
    .addColumn("last_sequence", "bigint", (c) => c.notNull())
    .execute();
  // Start above every sequence an agent already has (agents.command_seq was the old allocator).
  await sql`
    insert into command_counters (tenant_id, last_sequence)
    select tenant_id, max(command_seq) from agents group by tenant_id`.execute(db);
  await db.schema
    .createTable("tenant_commands")
    .addColumn("tenant_id", "uuid", (c) => c.notNull().references("tenants.id"))
    .addColumn("sequence", "bigint", (c) => c.notNull())
    .addColumn("command_id", "uuid", (c) => c.notNull().unique())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("ref", "text")
    // The one agent of the tenant the notice is not for (the revoked agent itself).
    .addColumn("except_agent_id", "uuid")
    .addColumn("body", "bytea", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("tenant_commands_pk", ["tenant_id", "sequence"])
    .execute();
  // One row per agent that acknowledged a tenant-wide notice (written by the batched ack flush).
  await db.schema
    .createTable("tenant_command_acks")
    .addColumn("agent_id", "uuid", (c) => c.notNull())
    .addColumn("sequence", "bigint", (c) => c.notNull())
    .addColumn("tenant_id", "uuid", (c) => c.notNull())
    .addColumn("acked_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("ack_status", "text", (c) => c.notNull().check(sql`ack_status in ('OK', 'FAILED', 'UNSUPPORTED')`))
    .addColumn("ack_reason", "text", (c) => c.notNull().defaultTo(""))
    .addPrimaryKeyConstraint("tenant_command_acks_pk", ["agent_id", "sequence"])
    .addForeignKeyConstraint("tenant_command_acks_command_fk", ["tenant_id", "sequence"], "tenant_commands", ["tenant_id", "sequence"])
    // Composite, as every tenant-scoped link since 0011: an ack cannot name another tenant's agent.
    .addForeignKeyConstraint("tenant_command_acks_agent_fk", ["tenant_id", "agent_id"], "agents", ["tenant_id", "id"])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(_db: Kysely<any>): Promise<void> {
  throw new Error("migrations are forward-only");
}
