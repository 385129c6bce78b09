import { type Kysely, sql } from "kysely";

// Frozen in time: never edit a migration that has landed; add a new one.
//
// Tenancy (issue 14): tenants can be suspended; the provider plane has its own credential
// (system keys, stored as SHA-256 only) and its own hash-chained audit log; and every link
// between two tenant-scoped rows is a composite (tenant_id, id) foreign key, so a row of one
// tenant can never point at another tenant's row, whatever a query does.
//
// telemetry_points and agent_events keep no foreign key (see 0002: the hottest write path; the
// ids come from the session). rollout_waves has no tenant_id: a wave belongs to its rollout.
// Adding the keys validates existing rows: a database that already holds a cross-tenant link
// fails this migration, naming the constraint, rather than keeping it.

const ZERO_HASH = sql`'\\x0000000000000000000000000000000000000000000000000000000000000000'::bytea`;

/** Replaces a single-column foreign key by a composite one on (tenant_id, column). */
// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on the current schema type
async function tenantForeignKey(db: Kysely<any>, table: string, column: string, target: string, oldConstraint: string | undefined): Promise<void> {
  if (oldConstraint) await sql`ALTER TABLE ${sql.table(table)} DROP CONSTRAINT ${sql.id(oldConstraint)}`.execute(db);
  const name = `${table}_tenant_${column}_fkey`;
  await sql`ALTER TABLE ${sql.table(table)} ADD CONSTRAINT ${sql.id(name)} FOREIGN KEY (tenant_id, ${sql.id(column)}) REFERENCES ${sql.table(target)} (tenant_id, id)`.execute(db);
}

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  // Suspension: a suspended tenant's operators and agents are refused (TENANT_SUSPENDED).
  await db.schema
    .alterTable("tenants")
    .addColumn("suspended_at", "timestamptz")
    .addColumn("suspend_reason", "text", (c) => c.notNull().defaultTo(""))
    .execute();

  // The provider's credential: not an operator of any tenant. `name` is unique so that replicas
  // starting at once create the bootstrap key once.
  await db.schema
    .createTable("system_keys")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull().unique())
    .addColumn("key_hash", "bytea", (c) => c.notNull().unique())
    .addColumn("display_prefix", "text", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("revoked_at", "timestamptz")
    .execute();

  // The provider audit chain: same records and hashing as a tenant's chain (tenant_id "").
  await db.schema
    .createTable("provider_audit_events")
    .addColumn("seq", "bigint", (c) => c.primaryKey())
    .addColumn("actor", "text", (c) => c.notNull())
    .addColumn("action", "text", (c) => c.notNull())
    .addColumn("target", "text", (c) => c.notNull())
    .addColumn("data", "jsonb", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull())
    .addColumn("prev_hash", "bytea", (c) => c.notNull())
    .addColumn("hash", "bytea", (c) => c.notNull())
    .execute();
  // Its head: one row, whose lock orders concurrent provider audit writers.
  await db.schema
    .createTable("provider_audit_head")
    .addColumn("id", "boolean", (c) => c.primaryKey().defaultTo(true).check(sql`id`))
    .addColumn("seq", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("head", "bytea", (c) => c.notNull().defaultTo(ZERO_HASH))
    .execute();
  await sql`INSERT INTO provider_audit_head DEFAULT VALUES`.execute(db);

  // Targets of tenant-scoped links: (tenant_id, id) is unique because id is. The agents index
  // on (tenant_id, id) from 0001 becomes the unique constraint's index.
  await sql`ALTER TABLE agents ADD CONSTRAINT agents_tenant_id_id_key UNIQUE (tenant_id, id)`.execute(db);
  await sql`DROP INDEX agents_tenant_idx`.execute(db);
  await sql`ALTER TABLE enrollment_tokens ADD CONSTRAINT enrollment_tokens_tenant_id_id_key UNIQUE (tenant_id, id)`.execute(db);
  await sql`ALTER TABLE release_keys ADD CONSTRAINT release_keys_tenant_id_id_key UNIQUE (tenant_id, id)`.execute(db);
  await sql`ALTER TABLE rollouts ADD CONSTRAINT rollouts_tenant_id_id_key UNIQUE (tenant_id, id)`.execute(db);

  // Every link between tenant-scoped rows, now composite. (A NULL enrollment_token_id still
  // means "registered without a token": MATCH SIMPLE skips the check when a column is NULL.)
  await tenantForeignKey(db, "agents", "enrollment_token_id", "enrollment_tokens", "agents_enrollment_token_id_fkey");
  await tenantForeignKey(db, "auth_challenges", "agent_id", "agents", "auth_challenges_agent_id_fkey");
  await tenantForeignKey(db, "sessions", "agent_id", "agents", "sessions_agent_id_fkey");
  await tenantForeignKey(db, "agent_commands", "agent_id", "agents", "agent_commands_agent_id_fkey");
  await tenantForeignKey(db, "rollouts", "release_key_id", "release_keys", "rollouts_release_key_id_fkey");
  await tenantForeignKey(db, "rollout_members", "agent_id", "agents", "rollout_members_agent_id_fkey");
  await tenantForeignKey(db, "rollout_members", "rollout_id", "rollouts", "rollout_members_rollout_id_fkey");
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(_db: Kysely<any>): Promise<void> {
  throw new Error("migrations are forward-only");
}
