import { type Kysely, sql } from "kysely";
import { migrations } from "../../migrations/index.js";
import type { Bus } from "../bus/bus.js";
import { PgBus } from "../bus/pg-bus.js";
import type { Schema } from "../db/schema.js";
import type { ReadinessCheck } from "../http/health-endpoints.js";

/**
 * The gateway's readiness conditions for /readyz: the database answers, every migration this
 * code knows is applied (a replica of an older schema must not take traffic), and the bus's
 * listening connection is up (without it, revocations from other replicas would not arrive).
 * One query covers the first two.
 */
export function readinessChecks(db: Kysely<Schema>, bus: Bus): Record<string, ReadinessCheck> {
  const required = Object.keys(migrations);
  let database: Promise<string | undefined> | undefined;
  const queryOnce = (): Promise<string | undefined> => {
    database ??= (async () => {
      const { rows } = await sql<{ name: string }>`select name from kysely_migration`.execute(db);
      const applied = new Set(rows.map((r) => r.name));
      return required.every((name) => applied.has(name)) ? undefined : "pending";
    })().finally(() => {
      database = undefined;
    });
    return database;
  };
  return {
    // Both checks share one query per probe run; a failed query fails both.
    database: async () => {
      await queryOnce();
      return undefined;
    },
    migrations: () => queryOnce(),
    bus: () => (bus instanceof PgBus && !bus.connected ? "disconnected" : undefined),
  };
}
