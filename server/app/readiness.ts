import type { Kysely } from "kysely";
import type { Bus } from "../bus/bus.js";
import { PgBus } from "../bus/pg-bus.js";
import { pendingMigrations } from "../db/database.js";
import type { Schema } from "../db/schema.js";
import type { ReadinessCheck } from "../http/health-endpoints.js";

/**
 * The gateway's readiness conditions for /readyz: the database answers, every migration this
 * code knows is applied (a replica of an older schema must not take traffic), and the bus's
 * listening connection is up (without it, revocations from other replicas would not arrive).
 * One query covers the first two.
 */
export function readinessChecks(db: Kysely<Schema>, bus: Bus): Record<string, ReadinessCheck> {
  let database: Promise<string | undefined> | undefined;
  const queryOnce = (): Promise<string | undefined> => {
    database ??= pendingMigrations(db)
      .then((pending) => (pending.length === 0 ? undefined : "pending"))
      .finally(() => {
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
