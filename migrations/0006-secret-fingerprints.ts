import { type Kysely, sql } from "kysely";

// Display prefixes used to be the first characters of the secret itself (and, for a bootstrap
// key chosen by the operator, of an arbitrary string). They become fingerprints of the stored
// hash — "agwk:" and the first 8 hex digits of SHA-256(secret) — so no character of any secret
// is kept. The hash is already stored, so existing rows are recomputed in place.

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  await sql`UPDATE api_keys SET display_prefix = 'agwk:' || substr(encode(key_hash, 'hex'), 1, 8)`.execute(db);
  await sql`UPDATE enrollment_tokens SET display_prefix = 'agwe:' || substr(encode(token_hash, 'hex'), 1, 8)`.execute(db);
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(_db: Kysely<any>): Promise<void> {
  throw new Error("migrations are forward-only");
}
