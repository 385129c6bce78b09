import { type Kysely, sql } from "kysely";

// Release signing keys and staged rollouts: waves with fixed membership, per-member progress.

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("release_keys")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("tenant_id", "uuid", (c) => c.notNull().references("tenants.id"))
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("public_key", "bytea", (c) => c.notNull().check(sql`length(public_key) = 32`))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("revoked_at", "timestamptz")
    .addUniqueConstraint("release_keys_tenant_key_uq", ["tenant_id", "public_key"])
    .execute();

  await db.schema
    .createTable("rollouts")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("tenant_id", "uuid", (c) => c.notNull().references("tenants.id"))
    .addColumn("target_version", "text", (c) => c.notNull())
    // The SignedReleaseManifest exactly as the operator submitted it.
    .addColumn("signed_manifest", "bytea", (c) => c.notNull())
    .addColumn("release_key_id", "uuid", (c) => c.notNull().references("release_keys.id"))
    .addColumn("state", "text", (c) => c.notNull().check(sql`state in ('PLANNED', 'RUNNING', 'HALTED', 'COMPLETED', 'CANCELLED')`))
    .addColumn("current_wave", "integer", (c) => c.notNull().defaultTo(-1))
    .addColumn("halt_reason", "text")
    .addColumn("resume_notes", "jsonb", (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn("auto_advance_after_ms", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("target_selector", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn("created_by", "text", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  // Only one rollout per tenant may be running (or halted, waiting for a decision) at a time.
  await db.schema
    .createIndex("rollouts_one_active_per_tenant")
    .on("rollouts")
    .column("tenant_id")
    .unique()
    .where(sql.ref("state"), "in", ["RUNNING", "HALTED"])
    .execute();
  await db.schema.createIndex("rollouts_tenant_created_idx").on("rollouts").columns(["tenant_id", "created_at"]).execute();

  await db.schema
    .createTable("rollout_waves")
    .addColumn("rollout_id", "uuid", (c) => c.notNull().references("rollouts.id"))
    .addColumn("index", "integer", (c) => c.notNull())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("state", "text", (c) => c.notNull().check(sql`state in ('PENDING', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED')`))
    .addColumn("failure_budget", "integer", (c) => c.notNull())
    // Failures an operator accepted with a resume note; they no longer count against the budget.
    .addColumn("accepted_failures", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("verify_window_ms", "integer", (c) => c.notNull())
    .addColumn("started_at", "timestamptz")
    .addColumn("verify_deadline", "timestamptz")
    .addColumn("completed_at", "timestamptz")
    .addPrimaryKeyConstraint("rollout_waves_pk", ["rollout_id", "index"])
    .execute();

  await db.schema
    .createTable("rollout_members")
    .addColumn("rollout_id", "uuid", (c) => c.notNull().references("rollouts.id"))
    .addColumn("agent_id", "uuid", (c) => c.notNull().references("agents.id"))
    .addColumn("tenant_id", "uuid", (c) => c.notNull().references("tenants.id"))
    .addColumn("wave", "integer", (c) => c.notNull())
    .addColumn("state", "text", (c) => c.notNull().check(sql`state in ('PENDING', 'DIRECTED', 'APPLYING', 'SUCCEEDED', 'FAILED')`))
    .addColumn("reason", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("straggler", "boolean", (c) => c.notNull().defaultTo(false))
    .addColumn("updated_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint("rollout_members_pk", ["rollout_id", "agent_id"])
    .execute();
  await db.schema.createIndex("rollout_members_wave_idx").on("rollout_members").columns(["rollout_id", "wave", "state"]).execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(_db: Kysely<any>): Promise<void> {
  throw new Error("migrations are forward-only");
}
