import { sql, type Kysely } from "kysely";

// What an agent claims about itself (host labels, from Register) is kept apart from the labels
// an operator set (the enrollment token's), so that selectors and rollout targeting cannot be
// steered by an agent. Until now `labels` held both, the token's winning: the token's labels
// are still known, so existing rows are split exactly — what the token did not set was claimed.

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on the current schema type
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("agents").addColumn("host_labels", "jsonb", (c) => c.notNull().defaultTo(sql`'{}'::jsonb`)).execute();
  await sql`
    UPDATE agents AS a
    SET host_labels = a.labels - ARRAY(SELECT jsonb_object_keys(t.labels)),
        labels = t.labels
    FROM enrollment_tokens AS t
    WHERE t.id = a.enrollment_token_id`.execute(db);
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(_db: Kysely<any>): Promise<void> {
  throw new Error("migrations are forward-only");
}
