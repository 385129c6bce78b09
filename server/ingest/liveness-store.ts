import { sql } from "kysely";
import type { Executor } from "../db/database.js";
import type { LivenessName } from "../db/schema.js";

/** One agent whose recorded liveness changed. */
export interface LivenessTransition {
  agentId: string;
  tenantId: string;
  from: LivenessName;
  to: LivenessName;
  lastSeenAt: Date | null;
}

/**
 * Key of the advisory lock that elects the one replica sweeping right now. Any constant works
 * as long as nothing else in the database uses it; this one spells "agwlive" in ASCII.
 */
const SWEEP_LOCK_KEY = "27416835358553701";

/**
 * Tries to become the only sweeper for the rest of the transaction. Transaction-scoped, so the
 * lock is released by commit, rollback or a dropped connection, and never leaks.
 */
export async function tryLockSweep(trx: Executor): Promise<boolean> {
  const { rows } = await sql<{ locked: boolean }>`SELECT pg_try_advisory_xact_lock(${SWEEP_LOCK_KEY}::bigint) AS locked`.execute(trx);
  return rows[0]?.locked === true;
}

/**
 * Records the liveness of up to `limit` agents whose stored liveness no longer matches their
 * last heartbeat, in ONE statement, and returns those transitions. The rule is the listing's
 * (agent-mapping.ts `livenessOf`): ONLINE while last_seen_at is newer than `now - staleAfter`,
 * STALE while newer than `now - offlineAfter`, else (or never seen) OFFLINE. Rows locked by a
 * concurrent heartbeat flush are skipped, not waited for; the next sweep gets them.
 */
export async function recordLivenessTransitions(
  trx: Executor,
  input: { now: Date; staleAfterMs: number; offlineAfterMs: number; limit: number },
): Promise<LivenessTransition[]> {
  const staleBefore = new Date(input.now.getTime() - input.staleAfterMs).toISOString();
  const offlineBefore = new Date(input.now.getTime() - input.offlineAfterMs).toISOString();
  const current = sql`CASE
      WHEN last_seen_at > ${staleBefore}::timestamptz THEN 'ONLINE'
      WHEN last_seen_at > ${offlineBefore}::timestamptz THEN 'STALE'
      ELSE 'OFFLINE' END`;
  const { rows } = await sql<{ id: string; tenant_id: string; previous: LivenessName; current: LivenessName; last_seen_at: Date | null }>`
    WITH due AS (
      SELECT id, liveness AS previous, ${current} AS current
      FROM agents
      WHERE liveness <> ${current}
      ORDER BY id
      LIMIT ${input.limit}
      FOR UPDATE SKIP LOCKED
    )
    UPDATE agents AS a SET liveness = due.current
    FROM due
    WHERE a.id = due.id
    RETURNING a.id, a.tenant_id, due.previous, due.current, a.last_seen_at`.execute(trx);
  return rows
    .map((r) => ({ agentId: r.id, tenantId: r.tenant_id, from: r.previous, to: r.current, lastSeenAt: r.last_seen_at }))
    // Audit records are appended in (tenant, agent) order, so tenant rows are locked in one order.
    .sort((x, y) => compare(x.tenantId, y.tenantId) || compare(x.agentId, y.agentId));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
