import { type Kysely, sql } from "kysely";

// Stateless handshake challenges (issue 16): BeginAuthHandshake writes nothing. A challenge id
// carries its expiry and a MAC tag, its nonce is an HMAC of the id, the agent and its key
// (server/auth/challenge-mac.ts), and CompleteAuthHandshake records the challenge's single use
// in the statement that issues the session. auth_challenges is no longer written; it stays so
// that replicas of the previous version keep working through a rolling upgrade (retention
// empties it), and a later migration drops it.

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  // The MAC keys, shared by every replica and worker through the database. The gateway adds the
  // first one at startup (INSERT … ON CONFLICT DO NOTHING, so replicas starting at once agree);
  // rotation inserts a newer one (docs/security.md). Never exposed by any API.
  await db.schema
    .createTable("handshake_keys")
    .addColumn("id", "integer", (c) => c.primaryKey())
    .addColumn("secret", "bytea", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  // One row per answered challenge, until retention removes it after the challenge expired: the
  // primary key refuses a second use. Only the challenge's own agent can write its row (the
  // id's MAC tag names the agent), and tenant and agent come from the agents row in the same
  // statement.
  await db.schema
    .createTable("used_challenges")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("tenant_id", "uuid", (c) => c.notNull().references("tenants.id"))
    .addColumn("agent_id", "uuid", (c) => c.notNull())
    .addColumn("expires_at", "timestamptz", (c) => c.notNull())
    .addForeignKeyConstraint("used_challenges_tenant_agent_id_fkey", ["tenant_id", "agent_id"], "agents", ["tenant_id", "id"])
    .execute();
  await db.schema.createIndex("used_challenges_expiry_idx").on("used_challenges").column("expires_at").execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(_db: Kysely<any>): Promise<void> {
  throw new Error("migrations are forward-only");
}
