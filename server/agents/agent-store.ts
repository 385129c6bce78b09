import { sql } from "kysely";
import type { Executor } from "../db/database.js";
import type { AgentStateName, ReportedStatusName } from "../db/schema.js";

/** An agent as the services see it. */
export interface AgentRecord {
  id: string;
  tenantId: string;
  name: string;
  identityPublicKey: Uint8Array;
  verificationCode: string;
  state: AgentStateName;
  /** Set by an operator (the enrollment token). */
  labels: Record<string, string>;
  /** Claimed by the agent at Register; never trusted for targeting unless asked for. */
  hostLabels: Record<string, string>;
  hostname: string;
  os: string;
  arch: string;
  agentVersion: string;
  enrollmentTokenId: string | null;
  createdAt: Date;
  approvedAt: Date | null;
  revokedAt: Date | null;
  revokeReason: string | null;
  revokedFrom: AgentStateName | null;
  lastSeenAt: Date | null;
  reportedStatus: ReportedStatusName;
  uptimeSeconds: number;
}

const COLUMNS = [
  "id", "tenant_id", "name", "identity_public_key", "verification_code", "state", "labels", "host_labels", "hostname", "os", "arch",
  "agent_version", "enrollment_token_id", "created_at", "approved_at", "revoked_at", "revoke_reason", "revoked_from", "last_seen_at",
  "reported_status", "uptime_seconds",
] as const;

/** Inserts a new agent. A concurrent registration of the same key fails on the unique index. */
export async function insertAgent(
  db: Executor,
  input: {
    id: string; tenantId: string; name: string; identityPublicKey: Uint8Array; verificationCode: string; state: AgentStateName;
    labels: Record<string, string>; hostLabels: Record<string, string>; hostname: string; os: string; arch: string; agentVersion: string; enrollmentTokenId: string;
  },
): Promise<AgentRecord> {
  const row = await db
    .insertInto("agents")
    .values({
      id: input.id,
      tenant_id: input.tenantId,
      name: input.name,
      identity_public_key: input.identityPublicKey,
      verification_code: input.verificationCode,
      state: input.state,
      labels: JSON.stringify(input.labels),
      host_labels: JSON.stringify(input.hostLabels),
      hostname: input.hostname,
      os: input.os,
      arch: input.arch,
      agent_version: input.agentVersion,
      enrollment_token_id: input.enrollmentTokenId,
      approved_at: input.state === "ACTIVE" ? new Date() : null,
    })
    .returning(COLUMNS)
    .executeTakeFirstOrThrow();
  return toAgent(row);
}

/** The live (not rejected, not retired) agent holding this key, in any tenant. */
export async function findLiveAgentByKey(db: Executor, key: Uint8Array): Promise<AgentRecord | undefined> {
  const row = await db.selectFrom("agents").select(COLUMNS).where("identity_public_key", "=", key).where("state", "not in", ["REJECTED", "RETIRED"]).executeTakeFirst();
  return row ? toAgent(row) : undefined;
}

/**
 * Whether the key was revoked and never un-revoked: true for REVOKED agents and for revoked
 * agents that were later retired, so retiring does not launder a revoked key.
 */
export async function isKeyRevoked(db: Executor, key: Uint8Array): Promise<boolean> {
  const row = await db.selectFrom("agents").select("id").where("identity_public_key", "=", key).where("revoked_at", "is not", null).limit(1).executeTakeFirst();
  return row !== undefined;
}

/** An agent by id, in any tenant (agent-facing calls, where the id comes with a proof). */
export async function getAgentById(db: Executor, id: string): Promise<AgentRecord | undefined> {
  const row = await db.selectFrom("agents").select(COLUMNS).where("id", "=", id).executeTakeFirst();
  return row ? toAgent(row) : undefined;
}

/**
 * An agent of the tenant; another tenant's agent is as good as missing. `forUpdate` locks the
 * row against other state changes with FOR NO KEY UPDATE, not FOR UPDATE: a transition never
 * changes the key, and FOR UPDATE would also block every insert whose foreign key names the
 * agent (its uploads, and a whole batch of acks or heartbeats that includes it) until commit.
 */
export async function getAgent(db: Executor, tenantId: string, id: string, forUpdate = false): Promise<AgentRecord | undefined> {
  let query = db.selectFrom("agents").select(COLUMNS).where("tenant_id", "=", tenantId).where("id", "=", id);
  if (forUpdate) query = query.forNoKeyUpdate();
  const row = await query.executeTakeFirst();
  return row ? toAgent(row) : undefined;
}

/** How many agents the tenant has, in any state (TenantService: a tenant that ever had one is not deleted). */
export async function countTenantAgents(db: Executor, tenantId: string): Promise<number> {
  const row = await db.selectFrom("agents").select((eb) => eb.fn.countAll<string>().as("n")).where("tenant_id", "=", tenantId).executeTakeFirstOrThrow();
  return Number(row.n);
}

/** The agents with these ids that belong to one of the tenants (live views re-read changed agents in one query). */
export async function getAgentsByIds(db: Executor, tenantIds: readonly string[], ids: readonly string[]): Promise<AgentRecord[]> {
  if (tenantIds.length === 0 || ids.length === 0) return [];
  const rows = await db.selectFrom("agents").select(COLUMNS).where("tenant_id", "in", tenantIds).where("id", "in", ids).execute();
  return rows.map(toAgent);
}

/** Ids of the tenants' agents with a heartbeat after `since` (live views refresh their "last heartbeat"), at most `limit`. */
export async function listAgentIdsSeenSince(db: Executor, tenantIds: readonly string[], since: Date, limit: number): Promise<string[]> {
  if (tenantIds.length === 0) return [];
  const rows = await db.selectFrom("agents").select("id").where("tenant_id", "in", tenantIds).where("last_seen_at", ">", since).limit(limit).execute();
  return rows.map((r) => r.id);
}

/** Filters for listing agents. */
export interface AgentFilter {
  tenantId: string;
  states: AgentStateName[];
  /** Operator labels the agent must carry. */
  labels: Record<string, string>;
  /** Host labels the agent must have claimed (only when the operator asks for them). */
  hostLabels?: Record<string, string>;
  namePrefix: string;
  lastSeen?: { after?: Date; notAfter?: Date; never?: boolean };
  afterId?: string;
  limit: number;
}

/** The tenant's agents matching the filter, ordered by id (keyset pagination). */
export async function listAgents(db: Executor, filter: AgentFilter): Promise<AgentRecord[]> {
  let query = db.selectFrom("agents").select(COLUMNS).where("tenant_id", "=", filter.tenantId);
  if (filter.states.length > 0) query = query.where("state", "in", filter.states);
  if (Object.keys(filter.labels).length > 0) query = query.where(sql<boolean>`labels @> ${JSON.stringify(filter.labels)}::jsonb`);
  if (filter.hostLabels && Object.keys(filter.hostLabels).length > 0) query = query.where(sql<boolean>`host_labels @> ${JSON.stringify(filter.hostLabels)}::jsonb`);
  if (filter.namePrefix) query = query.where("name", "like", `${filter.namePrefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
  const seen = filter.lastSeen;
  if (seen?.after) query = query.where("last_seen_at", ">", seen.after);
  if (seen?.notAfter) {
    const notAfter = seen.notAfter;
    query = seen.never
      ? query.where((eb) => eb.or([eb("last_seen_at", "<=", notAfter), eb("last_seen_at", "is", null)]))
      : query.where("last_seen_at", "<=", notAfter);
  }
  if (filter.afterId) query = query.where("id", ">", filter.afterId);
  const rows = await query.orderBy("id").limit(filter.limit).execute();
  return rows.map(toAgent);
}

/**
 * Sets an agent's state and the timestamps that go with it: approval time on ACTIVE from
 * PENDING_APPROVAL, revocation time, reason and previous state on REVOKED, and the revocation
 * cleared when an agent leaves REVOKED for a live state (un-revoke).
 */
export async function setAgentState(
  db: Executor,
  input: { tenantId: string; id: string; from: AgentStateName; state: AgentStateName; reason?: string | null },
): Promise<AgentRecord> {
  const now = new Date();
  const live = input.state === "ACTIVE" || input.state === "PENDING_APPROVAL";
  const row = await db
    .updateTable("agents")
    .set({
      state: input.state,
      ...(input.state === "ACTIVE" && input.from === "PENDING_APPROVAL" ? { approved_at: now } : {}),
      ...(input.from === "REVOKED" && live ? { revoked_at: null, revoke_reason: null, revoked_from: null } : {}),
      ...(input.state === "REVOKED" ? { revoked_at: now, revoke_reason: input.reason ?? "", revoked_from: input.from } : {}),
    })
    .where("tenant_id", "=", input.tenantId)
    .where("id", "=", input.id)
    .where("state", "=", input.from)
    .returning(COLUMNS)
    .executeTakeFirstOrThrow();
  return toAgent(row);
}

/** An ACTIVE agent as a rollout plan sees it. */
export interface RolloutCandidate {
  id: string;
  labels: Record<string, string>;
  agentVersion: string;
}

/**
 * The tenant's ACTIVE agents whose operator labels contain `selector.labels` and whose claimed
 * host labels contain `selector.hostLabels` (an empty selector matches all).
 */
export async function listRolloutCandidates(
  db: Executor,
  tenantId: string,
  selector: { labels: Record<string, string>; hostLabels: Record<string, string> },
): Promise<RolloutCandidate[]> {
  let query = db.selectFrom("agents").select(["id", "labels", "agent_version"]).where("tenant_id", "=", tenantId).where("state", "=", "ACTIVE");
  if (Object.keys(selector.labels).length > 0) query = query.where(sql<boolean>`labels @> ${JSON.stringify(selector.labels)}::jsonb`);
  if (Object.keys(selector.hostLabels).length > 0) query = query.where(sql<boolean>`host_labels @> ${JSON.stringify(selector.hostLabels)}::jsonb`);
  const rows = await query.execute();
  return rows.map((r) => ({ id: r.id, labels: r.labels, agentVersion: r.agent_version }));
}

/** What decides whether an agent's open stream may stay: its state and its current session (id and expiry). */
export interface StreamStanding {
  agentId: string;
  state: AgentStateName;
  revokeReason: string | null;
  sessionId: string | null;
  sessionExpiresAt: Date | null;
}

/**
 * The standing of each of these agents, joined with its session in ONE round trip (a bus
 * message can name many agents at once).
 */
export async function streamStandings(db: Executor, agentIds: string[]): Promise<StreamStanding[]> {
  const rows = await db
    .selectFrom("agents")
    .leftJoin("sessions", "sessions.agent_id", "agents.id")
    .select(["agents.id", "agents.state", "agents.revoke_reason", "sessions.id as session_id", "sessions.expires_at as session_expires_at"])
    // One array parameter: the statement is the same for 1 or 10,000 ids.
    .where("agents.id", "=", sql<string>`any(${agentIds}::uuid[])`)
    .execute();
  return rows.map((r) => ({ agentId: r.id, state: r.state, revokeReason: r.revoke_reason, sessionId: r.session_id, sessionExpiresAt: r.session_expires_at }));
}

type Row = {
  id: string; tenant_id: string; name: string; identity_public_key: Uint8Array; verification_code: string; state: AgentStateName;
  labels: Record<string, string>; host_labels: Record<string, string>; hostname: string; os: string; arch: string; agent_version: string; enrollment_token_id: string | null;
  created_at: Date; approved_at: Date | null; revoked_at: Date | null; revoke_reason: string | null; revoked_from: AgentStateName | null; last_seen_at: Date | null;
  reported_status: ReportedStatusName; uptime_seconds: string | number | bigint;
};

function toAgent(row: Row): AgentRecord {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    name: row.name,
    identityPublicKey: new Uint8Array(row.identity_public_key),
    verificationCode: row.verification_code,
    state: row.state,
    labels: row.labels,
    hostLabels: row.host_labels,
    hostname: row.hostname,
    os: row.os,
    arch: row.arch,
    agentVersion: row.agent_version,
    enrollmentTokenId: row.enrollment_token_id,
    createdAt: row.created_at,
    approvedAt: row.approved_at,
    revokedAt: row.revoked_at,
    revokeReason: row.revoke_reason,
    revokedFrom: row.revoked_from,
    lastSeenAt: row.last_seen_at,
    reportedStatus: row.reported_status,
    uptimeSeconds: Number(row.uptime_seconds),
  };
}

/**
 * Ids of every agent that is not ACTIVE (revoked, retired, rejected, pending): the agents whose
 * client certificates the TLS layer refuses (server/ca/deny-list.ts).
 */
export async function listInactiveAgentIds(db: Executor): Promise<string[]> {
  const rows = await db.selectFrom("agents").select("id").where("state", "<>", "ACTIVE").execute();
  return rows.map((r) => r.id);
}

/** Whether the agent exists and is ACTIVE. */
export async function isAgentActive(db: Executor, id: string): Promise<boolean> {
  const row = await db.selectFrom("agents").select("id").where("id", "=", id).where("state", "=", "ACTIVE").executeTakeFirst();
  return row !== undefined;
}
