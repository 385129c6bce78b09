import { type Kysely, sql } from "kysely";

// The internal CA (issue 14): the root and the intermediates that issue agent client
// certificates, shared by every replica. Private keys are stored sealed (AES-256-GCM with a key
// only the gateway's environment holds); a row without a key is a certificate whose key lives
// elsewhere (an imported root kept offline). Rotation retires the issuing intermediate: it stays
// trusted until it expires, but issues nothing more. At most one root and one intermediate are
// current (partial unique index), so replicas racing on first start cannot create two.

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("ca_certificates")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("role", "text", (c) => c.notNull().check(sql`role IN ('root', 'intermediate')`))
    .addColumn("certificate_der", "bytea", (c) => c.notNull())
    .addColumn("sealed_key", "text")
    .addColumn("fingerprint_sha256", "text", (c) => c.notNull().unique())
    .addColumn("not_before", "timestamptz", (c) => c.notNull())
    .addColumn("not_after", "timestamptz", (c) => c.notNull())
    .addColumn("created_at", "timestamptz", (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn("retired_at", "timestamptz")
    .execute();
  await sql`CREATE UNIQUE INDEX ca_certificates_current ON ca_certificates (role) WHERE retired_at IS NULL`.execute(db);
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(_db: Kysely<any>): Promise<void> {
  throw new Error("migrations are forward-only");
}
