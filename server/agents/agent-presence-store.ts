import { sql } from "kysely";
import type { Executor } from "../db/database.js";
import type { LivenessName, ReportedStatusName } from "../db/schema.js";

// The agents table's presence columns (last_seen_at, reported version, host facts, reported
// status, liveness): written in batches by the heartbeat flusher and the liveness sweeper,
// apart from agent-store.ts, which owns identity and lifecycle columns of the same table.

/** The latest heartbeat of one agent, as the coalescer keeps it until a flush. */
export interface HeartbeatReport {
  tenantId: string;
  /** When the gateway received the heartbeat. */
  seenAt: Date;
  /** The version the agent reported; undefined when the heartbeat did not say. */
  agentVersion: string | undefined;
  /** Host facts; undefined when the heartbeat carried none. */
  host: { hostname: string; os: string; arch: string } | undefined;
  /** The agent's own health status and uptime; undefined when the heartbeat did not say. */
  status?: ReportedStatusName | undefined;
  uptimeSeconds?: number | undefined;
}

/**
 * Writes many agents' heartbeats in ONE statement. Newest wins, also across replicas:
 * last_seen_at never moves backwards, and version and host facts are only taken from a report
 * at least as new as the stored last_seen_at. Rows are matched on (id, tenant_id), so a report
 * can only touch the agent of the session it came from.
 */
export async function writeHeartbeats(db: Executor, reports: ReadonlyMap<string, HeartbeatReport>): Promise<number> {
  if (reports.size === 0) return 0;
  // Sorted ids make concurrent flushes (several replicas) lock rows in a similar order.
  const ids = [...reports.keys()].sort();
  const r = ids.map((id) => reports.get(id) as HeartbeatReport);
  const result = await sql`
    UPDATE agents AS a SET
      last_seen_at = GREATEST(a.last_seen_at, v.seen_at),
      agent_version = CASE WHEN v.version IS NOT NULL AND (a.last_seen_at IS NULL OR v.seen_at >= a.last_seen_at) THEN v.version ELSE a.agent_version END,
      hostname = CASE WHEN v.hostname IS NOT NULL AND (a.last_seen_at IS NULL OR v.seen_at >= a.last_seen_at) THEN v.hostname ELSE a.hostname END,
      os = CASE WHEN v.os IS NOT NULL AND (a.last_seen_at IS NULL OR v.seen_at >= a.last_seen_at) THEN v.os ELSE a.os END,
      arch = CASE WHEN v.arch IS NOT NULL AND (a.last_seen_at IS NULL OR v.seen_at >= a.last_seen_at) THEN v.arch ELSE a.arch END,
      reported_status = CASE WHEN v.status IS NOT NULL AND (a.last_seen_at IS NULL OR v.seen_at >= a.last_seen_at) THEN v.status ELSE a.reported_status END,
      uptime_seconds = CASE WHEN v.uptime IS NOT NULL AND (a.last_seen_at IS NULL OR v.seen_at >= a.last_seen_at) THEN v.uptime ELSE a.uptime_seconds END
    FROM unnest(
      ${ids}::uuid[],
      ${r.map((x) => x.tenantId)}::uuid[],
      ${r.map((x) => x.seenAt.toISOString())}::timestamptz[],
      ${r.map((x) => x.agentVersion ?? null)}::text[],
      ${r.map((x) => x.host?.hostname ?? null)}::text[],
      ${r.map((x) => x.host?.os ?? null)}::text[],
      ${r.map((x) => x.host?.arch ?? null)}::text[],
      ${r.map((x) => x.status ?? null)}::text[],
      ${r.map((x) => (x.uptimeSeconds === undefined ? null : String(x.uptimeSeconds)))}::bigint[]
    ) AS v(id, tenant_id, seen_at, version, hostname, os, arch, status, uptime)
    WHERE a.id = v.id AND a.tenant_id = v.tenant_id`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

/** The stored version and last heartbeat time of an agent. */
export async function readReportedVersion(db: Executor, agentId: string): Promise<{ agentVersion: string; seenAt: Date | null } | undefined> {
  const row = await db.selectFrom("agents").select(["agent_version", "last_seen_at"]).where("id", "=", agentId).executeTakeFirst();
  return row ? { agentVersion: row.agent_version, seenAt: row.last_seen_at } : undefined;
}

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
