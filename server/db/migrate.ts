import { type Kysely, sql } from "kysely";
import pg from "pg";
import type { Logger } from "pino";
import { migrationProvider } from "../../migrations/index.js";
import { type Database, migrateToLatest } from "./database.js";
import type { Schema } from "./schema.js";

/**
 * Key of the advisory lock held while a process migrates ("agwmigr" in ASCII). Any constant
 * works as long as nothing else in the database uses it; exported for the test that holds it.
 */
export const MIGRATION_LOCK_KEY = "27416835375327090";

/** What one process's migration run did. */
export interface MigrationOutcome {
  /** Migrations this process applied (empty when another process had applied them). */
  applied: string[];
  /** Applied migrations this build does not know: the schema is newer than the code. */
  newer: string[];
}

/**
 * Brings the schema up to date, safely when several replicas start at once.
 *
 * The lock is a SESSION-level advisory lock (`pg_advisory_lock`) on a dedicated connection
 * opened for it, outside the pool, held from before the first read of the bookkeeping table to
 * after the last migration committed. Not a transaction-level lock: the work spans several
 * transactions on other connections (Kysely creates its bookkeeping tables outside any
 * transaction, then runs the migrations in one transaction on a pooled connection), and an
 * `xact` lock covers only its own transaction. A dedicated connection, because a session lock
 * taken on a pooled connection would go back to the pool still held. Kysely (≥ 0.28) takes its
 * own advisory lock around its migration transaction, but not around creating its tables, and
 * not around our newer-schema check below; this lock makes both one critical section and does
 * not depend on the Kysely version. A process that dies while holding it drops the connection,
 * and PostgreSQL releases the lock with it.
 *
 * The others wait (logged once), then find nothing pending. A database migrated by a NEWER build
 * (a rolling upgrade in progress, an older replica restarting) is left alone: migrations are
 * written so the previous version keeps working, so this build starts, logs it, and readiness
 * reports its own migrations as current. Refused is only a database that lacks a migration this
 * build knows while holding ones it does not: no order of forward-only migrations leads there.
 *
 * The embedded engine is one process by construction and needs no lock.
 */
export async function migrateDatabase(database: Database, logger: Pick<Logger, "info" | "warn">): Promise<MigrationOutcome> {
  if (database.kind !== "postgres" || !database.url) return migrateUnlocked(database.db, logger);
  const lock = new pg.Client({ connectionString: database.url });
  await lock.connect();
  // A failing lock connection after the lock was taken must not crash the process; the query
  // below or the unlock reports it.
  lock.on("error", (err) => logger.warn({ err }, "migration lock connection failed"));
  try {
    const { rows } = await lock.query<{ locked: boolean }>("SELECT pg_try_advisory_lock($1::bigint) AS locked", [MIGRATION_LOCK_KEY]);
    if (rows[0]?.locked !== true) {
      logger.info("waiting for another process to finish migrating the database");
      await lock.query("SELECT pg_advisory_lock($1::bigint)", [MIGRATION_LOCK_KEY]);
    }
    try {
      return await migrateUnlocked(database.db, logger);
    } finally {
      await lock.query("SELECT pg_advisory_unlock($1::bigint)", [MIGRATION_LOCK_KEY]);
    }
  } finally {
    await lock.end().catch(() => {});
  }
}

async function migrateUnlocked(db: Kysely<Schema>, logger: Pick<Logger, "info" | "warn">): Promise<MigrationOutcome> {
  const known = Object.keys(await migrationProvider.getMigrations());
  const applied = await appliedMigrations(db);
  const newer = applied.filter((name) => !known.includes(name));
  if (newer.length > 0) {
    const missing = known.filter((name) => !applied.includes(name));
    if (missing.length > 0) {
      throw new Error(`the database has migrations this build does not know (${newer.join(", ")}) but lacks ones it needs (${missing.join(", ")}); run the build that matches the database`);
    }
    logger.warn({ newer }, "the database schema is newer than this build; not migrating (migrations keep the previous version working)");
    return { applied: [], newer };
  }
  return { applied: await migrateToLatest(db), newer: [] };
}

/** Names in Kysely's bookkeeping table; none before the first migration created it. */
async function appliedMigrations(db: Kysely<Schema>): Promise<string[]> {
  const { rows: exists } = await sql<{ present: boolean }>`select to_regclass('kysely_migration') is not null as present`.execute(db);
  if (exists[0]?.present !== true) return [];
  const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db);
  return rows.map((r) => r.name);
}
