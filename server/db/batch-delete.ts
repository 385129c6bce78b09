import { sql } from "kysely";
import type { Executor } from "./database.js";

/**
 * The one retention DELETE (server/workers/retention.ts): removes at most `limit` rows of
 * `table` whose `column` is before `before`, and returns how many. Rows are picked by ctid with a
 * LIMIT, so one statement holds its row locks briefly; the age condition is repeated in the
 * outer WHERE so a row changed meanwhile (a renewed session) is re-checked and kept. Each
 * table's owning store calls it with its own table and column.
 */
export async function deleteBatchBefore(db: Executor, target: { table: string; column: string }, before: Date, limit: number): Promise<number> {
  const table = sql.table(target.table);
  const column = sql.ref(target.column);
  const result = await sql`
    delete from ${table}
    where ctid = any(array(select ctid from ${table} where ${column} < ${before} limit ${limit}))
      and ${column} < ${before}`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}
