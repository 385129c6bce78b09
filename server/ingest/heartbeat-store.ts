import { sql } from "kysely";
import type { Executor } from "../db/database.js";
import type { ReportedStatusName } from "../db/schema.js";

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
 * can only touch the agent of the session it came from. Also says which agents changed in a way
 * live views show (`notable`): a new reported version or status, or a first heartbeat after
 * none since `quietSince` (the agent just came online). `prev` is the same row as the statement
 * found it, before this update.
 */
export async function writeHeartbeats(db: Executor, reports: ReadonlyMap<string, HeartbeatReport>, quietSince?: Date): Promise<HeartbeatWrite> {
  if (reports.size === 0) return { written: 0, notable: [] };
  // Sorted ids make concurrent flushes (several replicas) lock rows in a similar order.
  const ids = [...reports.keys()].sort();
  const r = ids.map((id) => reports.get(id) as HeartbeatReport);
  const quiet = (quietSince ?? new Date(0)).toISOString();
  const result = await sql<{ id: string; notable: boolean }>`
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
    JOIN agents AS prev ON prev.id = v.id
    WHERE a.id = v.id AND a.tenant_id = v.tenant_id
    RETURNING a.id, (a.agent_version IS DISTINCT FROM prev.agent_version OR a.reported_status IS DISTINCT FROM prev.reported_status
      OR prev.last_seen_at IS NULL OR prev.last_seen_at < ${quiet}::timestamptz) AS notable`.execute(db);
  return { written: result.rows.length, notable: result.rows.filter((r) => r.notable).map((r) => r.id) };
}

/** What one heartbeat flush wrote. */
export interface HeartbeatWrite {
  written: number;
  /** Agents whose reported version or status changed, or that came back after a quiet spell. */
  notable: string[];
}

/** The stored version and last heartbeat time of an agent. */
export async function readReportedVersion(db: Executor, agentId: string): Promise<{ agentVersion: string; seenAt: Date | null } | undefined> {
  const row = await db.selectFrom("agents").select(["agent_version", "last_seen_at"]).where("id", "=", agentId).executeTakeFirst();
  return row ? { agentVersion: row.agent_version, seenAt: row.last_seen_at } : undefined;
}
