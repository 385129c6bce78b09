import { type Kysely, sql } from "kysely";

// Un-revoke returns an agent to the state it had before the revoke, so that revoking a pending
// agent and un-revoking it cannot skip approval and its verification-code check. Agents revoked
// before this migration: ACTIVE if they had ever been approved, else PENDING_APPROVAL.

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("agents").addColumn("revoked_from", "text").execute();
  await sql`UPDATE agents SET revoked_from = CASE WHEN approved_at IS NOT NULL THEN 'ACTIVE' ELSE 'PENDING_APPROVAL' END WHERE revoked_at IS NOT NULL`.execute(db);
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(_db: Kysely<any>): Promise<void> {
  throw new Error("migrations are forward-only");
}
