// Several replicas starting at once on an empty database (issue 15, item 5): the migrations run
// under an advisory lock, once, and every process comes up. Real gateway processes on real
// PostgreSQL. The race itself cannot be forced reliably, so the second test makes the lock
// observable: while the test holds it, a starting gateway waits (visible in pg_locks) without
// touching the schema, and comes up once it is released. Without the lock that test fails.
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { MIGRATION_LOCK_KEY } from "../server/db/migrate.js";
import { migrations } from "../migrations/index.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { type GatewayProcess, spawnGateway } from "./support/gateway-process.js";

const KNOWN = Object.keys(migrations).sort();
// Starting a gateway process compiles the server with tsx first: generous on a loaded machine.
const START_TIMEOUT_MS = 120_000;
const TEST_TIMEOUT_MS = 2 * START_TIMEOUT_MS + 30_000;
const cleanup: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step().catch(() => {});
});

async function fresh(): Promise<TestDatabase> {
  const database = await createTestDatabase();
  cleanup.push(() => database.drop());
  return database;
}

async function start(database: TestDatabase): Promise<GatewayProcess> {
  const gateway = await spawnGateway({ DATABASE_URL: database.url, AGW_LOG_LEVEL: "info" }, START_TIMEOUT_MS);
  cleanup.push(() => gateway.stop());
  return gateway;
}

async function query<R extends pg.QueryResultRow>(url: string, text: string, values: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

async function readyz(url: string): Promise<{ status: number; body: { ready: boolean; checks: Record<string, string> } }> {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, body: (await res.json()) as { ready: boolean; checks: Record<string, string> } };
}

/** JSON log lines at error level or above (pino: 50 error, 60 fatal). */
function errorLines(output: string): string[] {
  return output.split("\n").filter((line) => {
    try {
      const level = (JSON.parse(line) as { level?: unknown }).level;
      return typeof level === "number" ? level >= 50 : level === "error" || level === "fatal";
    } catch {
      return false;
    }
  });
}

const migratedBy = (g: GatewayProcess) => g.output().includes('"msg":"database migrated"');

describe("migrations with several replicas", () => {
  it("two gateway processes started at once on an empty database both come up, and each migration is applied once", async () => {
    const database = await fresh();
    const [a, b] = await Promise.all([start(database), start(database)]);
    expect((await readyz(a.url)).body).toMatchObject({ ready: true, checks: { migrations: "ok" } });
    expect((await readyz(b.url)).body).toMatchObject({ ready: true, checks: { migrations: "ok" } });
    const rows = await query<{ name: string; n: string }>(database.url, "SELECT name, count(*) AS n FROM kysely_migration GROUP BY name ORDER BY name");
    expect(rows.map((r) => r.name)).toEqual(KNOWN);
    expect(rows.every((r) => Number(r.n) === 1)).toBe(true);
    // Exactly one of them applied the migrations; the other found nothing left to do.
    expect([migratedBy(a), migratedBy(b)].filter(Boolean)).toHaveLength(1);
    expect(errorLines(a.output() + b.output())).toEqual([]);
  }, TEST_TIMEOUT_MS);

  it("a gateway starting while another process holds the migration lock waits without touching the schema, then comes up", async () => {
    const database = await fresh();
    const holder = new pg.Client({ connectionString: database.url });
    await holder.connect();
    cleanup.push(() => holder.end());
    await holder.query("SELECT pg_advisory_lock($1::bigint)", [MIGRATION_LOCK_KEY]);

    let output = "";
    const starting = spawnGateway({ DATABASE_URL: database.url, AGW_LOG_LEVEL: "info" }, START_TIMEOUT_MS);
    starting.catch(() => {});
    // Its lock request shows up as a waiting advisory lock in this database.
    await expect
      .poll(async () => {
        const [row] = await query<{ n: string }>(database.url, "SELECT count(*) AS n FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE d.datname = current_database() AND l.locktype = 'advisory' AND NOT l.granted");
        return Number(row?.n);
      }, { timeout: START_TIMEOUT_MS, interval: 100 })
      .toBe(1);
    const [table] = await query<{ present: boolean }>(database.url, "SELECT to_regclass('kysely_migration') IS NOT NULL AS present");
    expect(table?.present).toBe(false);

    await holder.query("SELECT pg_advisory_unlock($1::bigint)", [MIGRATION_LOCK_KEY]);
    const gateway = await starting;
    cleanup.push(() => gateway.stop());
    output = gateway.output();
    expect(output).toContain("waiting for another process to finish migrating the database");
    expect(migratedBy(gateway)).toBe(true);
    expect((await readyz(gateway.url)).body).toMatchObject({ ready: true, checks: { migrations: "ok" } });
    expect(errorLines(output)).toEqual([]);
  }, TEST_TIMEOUT_MS);

  it("an older build starts on a database a newer build migrated: it does not migrate, says so, and is ready", async () => {
    const database = await fresh();
    const first = await start(database);
    await first.stop();
    // What a newer build's migration leaves behind (its DDL is irrelevant to this build).
    await query(database.url, "INSERT INTO kysely_migration (name, timestamp) VALUES ('9999-from-a-newer-build', now()::text)");
    const older = await start(database);
    expect(older.output()).toContain("the database schema is newer than this build");
    expect(older.output()).toContain("9999-from-a-newer-build");
    expect((await readyz(older.url)).body).toMatchObject({ ready: true, checks: { migrations: "ok" } });
    expect(errorLines(older.output())).toEqual([]);
  }, TEST_TIMEOUT_MS);

  it("but a database missing a migration this build needs, holding one it does not know, is refused", async () => {
    const database = await fresh();
    const first = await start(database);
    await first.stop();
    const last = KNOWN.at(-1) ?? "";
    await query(database.url, "DELETE FROM kysely_migration WHERE name = $1", [last]);
    await query(database.url, "INSERT INTO kysely_migration (name, timestamp) VALUES ('9999-from-a-newer-build', now()::text)");
    await expect(spawnGateway({ DATABASE_URL: database.url }, START_TIMEOUT_MS)).rejects.toThrow(new RegExp(`lacks ones it needs \\(${last}\\)`));
  }, TEST_TIMEOUT_MS);
});
