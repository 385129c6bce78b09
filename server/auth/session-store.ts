import { sql } from "kysely";
import { deleteBatchBefore } from "../db/batch-delete.js";
import type { Executor } from "../db/database.js";
import { prepared } from "../db/named-statements.js";
import type { AgentStateName } from "../db/schema.js";

// Owner of used_challenges, sessions and the retired auth_challenges. The statements that write
// read agents (and tenants) as well: the state checks have to be in the same statement as the
// write, so that a revocation or suspension committed concurrently can never be overtaken by a
// session issued on a stale read. The handshake's two hot statements run as named prepared
// statements (server/db/named-statements.ts).

/** What a handshake needs to know about an agent, read in one round trip. */
export interface HandshakeAgent {
  tenantId: string;
  identityPublicKey: Uint8Array;
  state: AgentStateName;
  /** The database clock, so challenge expiries follow the clock that checks them. */
  nowMs: number;
}

/** The agent's key, tenant and state (BeginAuthHandshake, and CompleteAuthHandshake on a cold cache). */
export async function findHandshakeAgent(db: Executor, agentId: string): Promise<HandshakeAgent | undefined> {
  const row = await db
    .executeQuery(
      prepared(
        sql<{ tenant_id: string; identity_public_key: Uint8Array; state: AgentStateName; now_ms: number }>`
          select tenant_id, identity_public_key, state, (extract(epoch from now()) * 1000)::float8 as now_ms
          from agents where id = ${agentId}::uuid`.compile(db),
      ),
    )
    .then((r) => r.rows[0]);
  return row ? { tenantId: row.tenant_id, identityPublicKey: new Uint8Array(row.identity_public_key), state: row.state, nowMs: Number(row.now_ms) } : undefined;
}

/** A session issued by `issueSessionForChallenge`. */
export interface IssuedSessionRow {
  expiresAt: Date;
  /** The agent had a session row that this one replaced (it must be fenced out everywhere). */
  replaced: boolean;
}

/**
 * ONE statement: records the challenge's use (the primary key of used_challenges refuses a
 * second use, also a concurrent one, which waits for the first to commit) and upserts the
 * agent's session — only if the challenge is still fresh by the database clock, the agent is
 * ACTIVE and its tenant is not suspended. The session row is keyed by agent, so it replaces
 * (fences out) the previous one, and with `notifyIfReplaced` the statement also announces that
 * (pg_notify, sent on commit) — no separate round trip. Undefined when refused: nothing was
 * written, and `recordChallengeUse` says why.
 */
export async function issueSessionForChallenge(
  db: Executor,
  input: {
    challengeId: string;
    challengeExpiresAt: Date;
    agentId: string;
    sessionId: string;
    tokenHash: Uint8Array;
    ttlMs: number;
    /** A NOTIFY sent (by this statement, so exactly when it commits) if a session was replaced. */
    notifyIfReplaced?: { channel: string; text: string } | undefined;
  },
): Promise<IssuedSessionRow | undefined> {
  const notify = input.notifyIfReplaced;
  const result = await db.executeQuery(
    prepared(
      sql<{ expires_at: Date; inserted: boolean }>`
        with agent as (
          select a.id, a.tenant_id from agents a
          where a.id = ${input.agentId}::uuid and a.state = 'ACTIVE'
            and not exists (select 1 from tenants t where t.id = a.tenant_id and t.suspended_at is not null)
        ), used as (
          insert into used_challenges (id, tenant_id, agent_id, expires_at)
          select ${input.challengeId}::uuid, tenant_id, id, ${input.challengeExpiresAt}::timestamptz from agent
          where ${input.challengeExpiresAt}::timestamptz > now()
          on conflict (id) do nothing
          returning agent_id, tenant_id
        ), issued as (
          insert into sessions (agent_id, id, tenant_id, token_hash, expires_at)
          select agent_id, ${input.sessionId}::uuid, tenant_id, ${input.tokenHash}::bytea, now() + ${`${input.ttlMs} milliseconds`}::interval from used
          on conflict (agent_id) do update
            set id = excluded.id, token_hash = excluded.token_hash, created_at = now(), expires_at = excluded.expires_at
          returning expires_at, (xmax = 0) as inserted
        )
        select expires_at, inserted${notify ? sql`, case when inserted then null else pg_notify(${notify.channel}, ${notify.text})::text end as notified` : sql``}
        from issued`.compile(db),
    ),
  );
  const row = result.rows[0];
  return row ? { expiresAt: row.expires_at, replaced: !row.inserted } : undefined;
}

/** Why a challenge was refused, after its use was recorded. */
export interface ChallengeUse {
  /** Used before this call (or by a concurrent call that committed first). */
  usedBefore: boolean;
  /** Still fresh by the database clock. */
  fresh: boolean;
  agentState: AgentStateName;
  tenantSuspended: boolean;
}

/**
 * The refusal path (a failed signature, or a refused `issueSessionForChallenge`): records the
 * challenge's use if it is fresh and unused — a failed attempt uses it up too — and reads why
 * it was refused, in one statement. Undefined for an unknown agent.
 */
export async function recordChallengeUse(db: Executor, input: { challengeId: string; challengeExpiresAt: Date; agentId: string }): Promise<ChallengeUse | undefined> {
  const { rows } = await sql<{ state: AgentStateName; tenant_suspended: boolean; used_before: boolean; recorded: boolean; fresh: boolean }>`
    with recorded as (
      insert into used_challenges (id, tenant_id, agent_id, expires_at)
      select ${input.challengeId}::uuid, a.tenant_id, a.id, ${input.challengeExpiresAt}::timestamptz from agents a
      where a.id = ${input.agentId}::uuid and ${input.challengeExpiresAt}::timestamptz > now()
      on conflict (id) do nothing
      returning id
    )
    select a.state,
      exists (select 1 from tenants t where t.id = a.tenant_id and t.suspended_at is not null) as tenant_suspended,
      exists (select 1 from used_challenges u where u.id = ${input.challengeId}::uuid) as used_before,
      exists (select 1 from recorded) as recorded,
      ${input.challengeExpiresAt}::timestamptz > now() as fresh
    from agents a where a.id = ${input.agentId}::uuid`.execute(db);
  const row = rows[0];
  if (!row) return undefined;
  return { usedBefore: row.used_before || (row.fresh && !row.recorded), fresh: row.fresh, agentState: row.state, tenantSuspended: row.tenant_suspended };
}

/**
 * Deletes at most `limit` challenges of the previous version (auth_challenges, no longer
 * written) that expired before `before`; returns how many. An expired challenge can never be
 * answered, so any `before` ≤ now is safe.
 */
export async function deleteChallengesExpiredBefore(db: Executor, before: Date, limit: number): Promise<number> {
  return await deleteBatchBefore(db, { table: "auth_challenges", column: "expires_at" }, before, limit);
}

/**
 * Deletes at most `limit` records of answered challenges that expired before `before`; returns
 * how many. Safe for any `before` ≤ now (database clock): a challenge is only ever accepted by
 * a statement that finds it fresh by that clock, so a replay after its record is gone is
 * refused as expired.
 */
export async function deleteUsedChallengesExpiredBefore(db: Executor, before: Date, limit: number): Promise<number> {
  return await deleteBatchBefore(db, { table: "used_challenges", column: "expires_at" }, before, limit);
}

/**
 * Deletes at most `limit` sessions that expired before `before`; returns how many. There is at
 * most one row per agent (a handshake replaces it), and the expiry is re-checked in the outer
 * WHERE, so a session renewed meanwhile is kept.
 */
export async function deleteSessionsExpiredBefore(db: Executor, before: Date, limit: number): Promise<number> {
  return await deleteBatchBefore(db, { table: "sessions", column: "expires_at" }, before, limit);
}

/** A session found by its token hash, with its agent's current state (one round trip). */
export interface SessionLookup {
  sessionId: string;
  agentId: string;
  tenantId: string;
  expiresAt: Date;
  agentState: AgentStateName;
}

/** The session holding this token hash, or undefined. */
export async function findSessionByTokenHash(db: Executor, tokenHash: Uint8Array): Promise<SessionLookup | undefined> {
  const row = await db
    .selectFrom("sessions")
    .innerJoin("agents", "agents.id", "sessions.agent_id")
    .select(["sessions.id", "sessions.agent_id", "sessions.tenant_id", "sessions.expires_at", "agents.state"])
    .where("sessions.token_hash", "=", tokenHash)
    .executeTakeFirst();
  return row ? { sessionId: row.id, agentId: row.agent_id, tenantId: row.tenant_id, expiresAt: row.expires_at, agentState: row.state } : undefined;
}

/** Ends the agent's session (revocation and retirement). */
export async function deleteAgentSessions(db: Executor, agentId: string): Promise<void> {
  await db.deleteFrom("sessions").where("agent_id", "=", agentId).execute();
}
