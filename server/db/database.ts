import { mkdirSync } from "node:fs";
import type { Tracer } from "@opentelemetry/api";
import { type Dialect, Kysely, Migrator, PostgresDialect, sql, type Transaction } from "kysely";
import pg from "pg";
import type { Logger } from "pino";
import { migrationProvider } from "../../migrations/index.js";
import { nameMarkedStatements } from "./named-statements.js";
import { tracedDialect } from "../observability/db-tracing.js";
import type { Schema } from "./schema.js";

/** The database handle the gateway uses; `kind` says which engine is behind it. */
export interface Database {
  db: Kysely<Schema>;
  kind: "postgres" | "pglite";
  /** Connection string of the external server (undefined for the embedded engine). */
  url: string | undefined;
  close(): Promise<void>;
  /** The connection pool's counts (PostgreSQL only), read by the metrics at scrape time. */
  pool?: () => PoolCounts;
}

/** What the pool reports: connections open, of them idle, queries waiting for one, and the size. */
export interface PoolCounts {
  total: number;
  idle: number;
  waiting: number;
  max: number;
}

/** A Kysely handle or an open transaction: queries accept either. */
export type Executor = Kysely<Schema> | Transaction<Schema>;

/** Options for opening the database. */
export interface OpenDatabaseOptions {
  databaseUrl: string | undefined;
  dataDir: string;
  poolSize: number;
  logger: Logger;
  /** When tracing is on: every statement run inside a traced call becomes a span. */
  tracer?: Tracer | undefined;
}

/**
 * Opens PostgreSQL via `pg` when a URL is given, else an embedded PostgreSQL (PGlite) in
 * `dataDir`, so `npm start` works on a bare machine. Both speak the same SQL and run the same
 * migrations.
 */
export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  if (options.databaseUrl) {
    const pool = new pg.Pool({ connectionString: options.databaseUrl, max: options.poolSize });
    // A dropped connection must not crash the process; the pool replaces it.
    pool.on("error", (err) => options.logger.warn({ err }, "idle PostgreSQL connection failed"));
    nameMarkedStatements(pool);
    const db = new Kysely<Schema>({ dialect: traceable(new PostgresDialect({ pool }), options.tracer) });
    const counts = (): PoolCounts => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount, max: options.poolSize });
    return { db, kind: "postgres", url: options.databaseUrl, close: () => db.destroy(), pool: counts };
  }
  mkdirSync(options.dataDir, { recursive: true });
  // Loaded lazily: the WASM engine is large and unused when an external server is configured.
  const [{ PGlite }, { PGliteDialect }] = await Promise.all([
    import("@electric-sql/pglite"),
    import("kysely-pglite-dialect"),
  ]);
  const pglite = await PGlite.create(options.dataDir);
  const db = new Kysely<Schema>({ dialect: traceable(new PGliteDialect(pglite), options.tracer) });
  return {
    db,
    kind: "pglite",
    url: undefined,
    close: async () => {
      await db.destroy();
      if (!pglite.closed) await pglite.close();
    },
  };
}

function traceable(dialect: Dialect, tracer: Tracer | undefined): Dialect {
  return tracer ? tracedDialect(dialect, tracer) : dialect;
}

/**
 * Applies every pending migration; returns the names applied. Throws on the first failure. No
 * lock across processes beyond Kysely's own: gateways migrate through migrateDatabase()
 * (db/migrate.ts), which holds one around this.
 */
export async function migrateToLatest(db: Kysely<Schema>): Promise<string[]> {
  const migrator = new Migrator({ db, provider: migrationProvider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);
}

/**
 * Migrations this code knows that the database has not applied (for readiness: a replica must
 * not serve a schema older than it needs). One read of Kysely's bookkeeping table, no DDL.
 */
export async function pendingMigrations(db: Kysely<Schema>): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`select name from kysely_migration`.execute(db);
  const applied = new Set(rows.map((r) => r.name));
  return Object.keys(await migrationProvider.getMigrations()).filter((name) => !applied.has(name));
}
