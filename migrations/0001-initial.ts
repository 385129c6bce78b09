import { type Kysely, sql } from "kysely";

// Frozen in time: never edit a migration that has landed; add a new one.
// Every row carries tenant_id, and every lookup by a secret goes through its SHA-256 hash.

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("tenants")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull().unique())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    // Head of the tenant's audit hash chain; the row lock on it orders audit writes.
    .addColumn("audit_seq", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("audit_head", "bytea", (c) => c.notNull().defaultTo(sql`'\\x0000000000000000000000000000000000000000000000000000000000000000'::bytea`))
    .execute();

  await db.schema
    .createTable("api_keys")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("tenant_id", "uuid", (c) => c.notNull().references("tenants.id"))
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("role", "text", (c) => c.notNull().check(sql`role in ('admin', 'editor', 'viewer')`))
    .addColumn("key_hash", "bytea", (c) => c.notNull().unique())
    .addColumn("display_prefix", "text", (c) => c.notNull())
    .addColumn("created_by", "text", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("revoked_at", "timestamptz")
    .addColumn("last_used_at", "timestamptz")
    .execute();
  await db.schema.createIndex("api_keys_tenant_idx").on("api_keys").columns(["tenant_id", "created_at"]).execute();

  await db.schema
    .createTable("enrollment_tokens")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("tenant_id", "uuid", (c) => c.notNull().references("tenants.id"))
    .addColumn("token_hash", "bytea", (c) => c.notNull().unique())
    .addColumn("display_prefix", "text", (c) => c.notNull())
    .addColumn("description", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("pinned_agent_name", "text")
    .addColumn("labels", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn("requires_approval", "boolean", (c) => c.notNull())
    .addColumn("max_uses", "integer", (c) => c.notNull().check(sql`max_uses > 0`))
    .addColumn("uses", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("expires_at", "timestamptz", (c) => c.notNull())
    .addColumn("revoked_at", "timestamptz")
    .addColumn("created_by", "text", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addCheckConstraint("enrollment_tokens_uses_check", sql`uses >= 0 and uses <= max_uses`)
    .execute();
  await db.schema.createIndex("enrollment_tokens_tenant_idx").on("enrollment_tokens").columns(["tenant_id", "created_at"]).execute();

  await db.schema
    .createTable("agents")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("tenant_id", "uuid", (c) => c.notNull().references("tenants.id"))
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("identity_public_key", "bytea", (c) => c.notNull().check(sql`length(identity_public_key) = 32`))
    .addColumn("verification_code", "text", (c) => c.notNull())
    .addColumn("state", "text", (c) =>
      c.notNull().check(sql`state in ('PENDING_APPROVAL', 'ACTIVE', 'REJECTED', 'REVOKED', 'RETIRED')`),
    )
    .addColumn("labels", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn("hostname", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("os", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("arch", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("agent_version", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("enrollment_token_id", "uuid", (c) => c.references("enrollment_tokens.id"))
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("approved_at", "timestamptz")
    .addColumn("revoked_at", "timestamptz")
    .addColumn("revoke_reason", "text")
    .addColumn("last_seen_at", "timestamptz")
    .execute();
  // A key identifies one live agent across all tenants. Rejected and retired agents release
  // their key so it can enroll again; a revoked one keeps it, so re-registration is refused.
  await db.schema
    .createIndex("agents_live_key_uidx")
    .on("agents")
    .column("identity_public_key")
    .unique()
    .where(sql.ref("state"), "not in", ["REJECTED", "RETIRED"])
    .execute();
  // Every agent that ever held a key, for the revocation check, which outlives retirement.
  await db.schema.createIndex("agents_key_idx").on("agents").column("identity_public_key").execute();
  await db.schema.createIndex("agents_tenant_idx").on("agents").columns(["tenant_id", "id"]).execute();
  await db.schema.createIndex("agents_tenant_state_idx").on("agents").columns(["tenant_id", "state"]).execute();

  await db.schema
    .createTable("auth_challenges")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("tenant_id", "uuid", (c) => c.notNull().references("tenants.id"))
    .addColumn("agent_id", "uuid", (c) => c.notNull().references("agents.id"))
    .addColumn("nonce", "bytea", (c) => c.notNull())
    .addColumn("expires_at", "timestamptz", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("auth_challenges_expiry_idx").on("auth_challenges").column("expires_at").execute();

  // One live session per agent: the primary key on agent_id makes a new handshake replace the
  // previous session row, which fences the old token out.
  await db.schema
    .createTable("sessions")
    .addColumn("agent_id", "uuid", (c) => c.primaryKey().references("agents.id"))
    .addColumn("id", "uuid", (c) => c.notNull().unique())
    .addColumn("tenant_id", "uuid", (c) => c.notNull().references("tenants.id"))
    .addColumn("token_hash", "bytea", (c) => c.notNull().unique())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("expires_at", "timestamptz", (c) => c.notNull())
    .execute();

  await db.schema
    .createTable("audit_events")
    .addColumn("tenant_id", "uuid", (c) => c.notNull().references("tenants.id"))
    .addColumn("seq", "bigint", (c) => c.notNull())
    .addColumn("actor", "text", (c) => c.notNull())
    .addColumn("action", "text", (c) => c.notNull())
    .addColumn("target", "text", (c) => c.notNull())
    .addColumn("data", "jsonb", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull())
    .addColumn("prev_hash", "bytea", (c) => c.notNull())
    .addColumn("hash", "bytea", (c) => c.notNull())
    .addPrimaryKeyConstraint("audit_events_pk", ["tenant_id", "seq"])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(_db: Kysely<any>): Promise<void> {
  throw new Error("migrations are forward-only");
}
