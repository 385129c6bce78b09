import { createHash } from "node:crypto";
import type { CompiledQuery } from "kysely";
import type pg from "pg";

/**
 * Named prepared statements for the hot statements (the handshake's). A store marks a compiled
 * query with `prepared()`; on PostgreSQL connections (`pg`), a query whose SQL text was marked
 * runs as a named prepared statement, so the server parses and plans it once per connection
 * instead of on every call. Everything else runs unnamed, as before; the embedded engine ignores
 * the mark. Only texts a store marks are named (a handful, fixed at build time), so the set of
 * statements held per connection stays small and known.
 */
const names = new Map<string, string>();

/** At most this many marked texts: stores mark fixed statements, so more is a programming error. */
const MAX_NAMED = 64;

/** Marks `query` to run as a named prepared statement; returns it for `db.executeQuery()`. */
export function prepared<R>(query: CompiledQuery<R>): CompiledQuery<R> {
  if (!names.has(query.sql) && names.size < MAX_NAMED) {
    names.set(query.sql, `agw_${createHash("sha256").update(query.sql).digest("hex").slice(0, 24)}`);
  }
  return query;
}

/** The statement name for this SQL text, when a store marked it. */
export function statementName(text: string): string | undefined {
  return names.get(text);
}

type QueryFn = (config: unknown, values?: unknown, callback?: unknown) => unknown;

/**
 * Makes the pool's connections run marked texts as named statements (called once per pool by
 * openDatabase). Kysely's driver calls `client.query(text, values)`; a marked text becomes
 * `client.query({ name, text, values })`, which `pg` prepares on that connection's first use.
 */
export function nameMarkedStatements(pool: pg.Pool): void {
  pool.on("connect", (client) => {
    const target = client as unknown as { query: QueryFn };
    const query = target.query.bind(client) as QueryFn;
    target.query = (config, values, callback) => {
      if (typeof config === "string" && Array.isArray(values)) {
        const name = names.get(config);
        if (name !== undefined) return query({ name, text: config, values }, callback);
      }
      return query(config, values, callback);
    };
  });
}
