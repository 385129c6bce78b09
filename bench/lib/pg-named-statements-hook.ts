/**
 * EXPERIMENT, bench-only preload (`--import ./bench/lib/pg-named-statements-hook.ts`): makes
 * every parameterized `pg` query a named prepared statement (name = hash of the SQL text), so
 * PostgreSQL parses and plans each distinct statement once per connection instead of on every
 * call. The server code is unchanged; this measures what naming everything would gain over the
 * server as it is (which names only the statements its stores mark, server/db/named-statements.ts:
 * the handshake's; those arrive here already named and pass through). Distinct texts are capped
 * (variable-length IN lists produce many texts); beyond the cap queries stay unnamed.
 */
import { createHash } from "node:crypto";
import pg from "pg";

const MAX_NAMED = 500;
const names = new Map<string, string>();
const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
const original = proto.query;

proto.query = function query(this: unknown, config: unknown, values?: unknown, callback?: unknown) {
  if (typeof config === "string" && Array.isArray(values) && values.length > 0) {
    let name = names.get(config);
    if (name === undefined && names.size < MAX_NAMED) {
      name = `agw_${createHash("sha1").update(config).digest("hex").slice(0, 20)}`;
      names.set(config, name);
    }
    if (name !== undefined) return original.call(this, { name, text: config, values }, callback);
  }
  return original.call(this, config, values, callback);
};
process.stderr.write("pg-named-statements-hook: parameterized queries run as named prepared statements\n");
