import type { Kysely } from "kysely";
import { oldestUnackedAgeSeconds } from "../control/command-store.js";
import type { PoolCounts } from "../db/database.js";
import type { Schema } from "../db/schema.js";
import type { ConnectionGuardStats } from "../http/connection-guard.js";
import { countByState } from "../rollout/rollout-store.js";
import { observables, observe } from "./metrics.js";

const ROLLOUT_STATES = ["PLANNED", "RUNNING", "HALTED", "COMPLETED", "CANCELLED"];
const MEMBER_STATES = ["PENDING", "DIRECTED", "APPLYING", "SUCCEEDED", "FAILED"];

/** What a running gateway lets the metrics read at scrape time. */
export interface GatewayState {
  db: Kysely<Schema>;
  pool: (() => PoolCounts) | undefined;
  openStreams: () => number;
  heartbeats: { readonly written: number; readonly rejected: number; readonly shed: number; readonly flushes: number; readonly failures: number };
  acks: { readonly rejected: number; readonly shed: number };
  connections: ConnectionGuardStats;
  /** Only commands of agents seen this recently count towards the oldest unacknowledged age. */
  staleAfterMs: number;
  /** Database figures are re-read at most this often, however often Prometheus scrapes. */
  databaseCacheMs?: number;
}

interface DatabaseFigures {
  oldestUnacked: number;
  rollouts: Map<string, number>;
  members: Map<string, number>;
}

/**
 * Reports a gateway's state at each scrape: counts it keeps anyway (streams, batch-writer
 * statistics, connection guard, pool) cost nothing between scrapes; the database figures
 * (oldest unacknowledged command, rollouts and members by state) are three small queries,
 * cached, and skipped — not failed — while the database is unreachable. Returns the removal.
 */
export function observeGateway(state: GatewayState): () => void {
  const cacheMs = state.databaseCacheMs ?? 10_000;
  let cached: { at: number; figures: Promise<DatabaseFigures | undefined> } | undefined;
  const figures = () => {
    if (!cached || Date.now() - cached.at >= cacheMs) {
      const read = readDatabaseFigures(state).catch(() => undefined);
      cached = { at: Date.now(), figures: read };
    }
    return cached.figures;
  };
  const o = observables;
  return observe(
    [
      o.controlStreams,
      o.oldestUnackedAge,
      o.rollouts,
      o.rolloutMembers,
      o.heartbeatsWritten,
      o.heartbeatFlushes,
      o.droppedRows,
      o.connectionsClosed,
      o.connectionRefusals,
      o.poolConnections,
      o.poolPending,
      o.poolMax,
    ],
    async (result) => {
      result.observe(o.controlStreams, state.openStreams());
      const hb = state.heartbeats;
      result.observe(o.heartbeatsWritten, hb.written);
      result.observe(o.heartbeatFlushes, hb.flushes, { outcome: "ok" });
      result.observe(o.heartbeatFlushes, hb.failures, { outcome: "failed" });
      result.observe(o.droppedRows, hb.rejected, { writer: "heartbeats", reason: "rejected" });
      result.observe(o.droppedRows, hb.shed, { writer: "heartbeats", reason: "shed" });
      result.observe(o.droppedRows, state.acks.rejected, { writer: "acks", reason: "rejected" });
      result.observe(o.droppedRows, state.acks.shed, { writer: "acks", reason: "shed" });
      const c = state.connections;
      result.observe(o.connectionRefusals, c.refusedTotalCap, { limit: "connections" });
      result.observe(o.connectionRefusals, c.refusedSourceCap, { limit: "connections_per_source" });
      result.observe(o.connectionsClosed, c.closedBeforeFirstRequest, { reason: "first_request_timeout" });
      result.observe(o.connectionsClosed, c.closedIdle, { reason: "idle" });
      result.observe(o.connectionsClosed, c.closedSlowBody, { reason: "slow_body" });
      const pool = state.pool?.();
      if (pool) {
        result.observe(o.poolConnections, pool.total - pool.idle, { "db.client.connection.state": "used" });
        result.observe(o.poolConnections, pool.idle, { "db.client.connection.state": "idle" });
        result.observe(o.poolPending, pool.waiting);
        result.observe(o.poolMax, pool.max);
      }
      const db = await figures();
      if (db) {
        result.observe(o.oldestUnackedAge, db.oldestUnacked);
        for (const s of ROLLOUT_STATES) result.observe(o.rollouts, db.rollouts.get(s) ?? 0, { state: s });
        for (const s of MEMBER_STATES) result.observe(o.rolloutMembers, db.members.get(s) ?? 0, { state: s });
      }
    },
  );
}

async function readDatabaseFigures(state: GatewayState): Promise<DatabaseFigures> {
  const [oldestUnacked, counts] = await Promise.all([oldestUnackedAgeSeconds(state.db, new Date(Date.now() - state.staleAfterMs)), countByState(state.db)]);
  return { oldestUnacked, ...counts };
}
