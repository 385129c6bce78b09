import { sql } from "kysely";
import type { Executor } from "./database.js";

/**
 * Tries to take the session-level advisory lock `key` (a bigint as a string) on this
 * connection, without waiting. The caller must hold a dedicated connection
 * (`db.connection().execute(…)`) and release the lock on it before it goes back to the pool.
 */
export async function tryAdvisoryLock(conn: Executor, key: string): Promise<boolean> {
  const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_lock(${key}::bigint) as locked`.execute(conn);
  return rows[0]?.locked === true;
}

/** Releases a session-level advisory lock taken by tryAdvisoryLock() on the same connection. */
export async function advisoryUnlock(conn: Executor, key: string): Promise<void> {
  await sql`select pg_advisory_unlock(${key}::bigint)`.execute(conn);
}
