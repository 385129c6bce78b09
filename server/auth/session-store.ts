import { sql } from "kysely";
import { deleteBatchBefore } from "../db/batch-delete.js";
import type { Executor } from "../db/database.js";
import type { AgentStateName } from "../db/schema.js";

// Owner of auth_challenges and sessions. Three statements here read agents as well: the state
// check has to be in the same statement as the write, so that a revocation committed
// concurrently can never be overtaken by a challenge or session issued on a stale read.

/**
 * Stores a challenge only if the agent is ACTIVE and holds this key (INSERT … SELECT from
 * agents, one round trip). Returns its expiry, or undefined when no row qualified.
 */
export async function insertChallengeForActiveAgent(
  db: Executor,
  input: { challengeId: string; agentId: string; identityPublicKey: Uint8Array; nonce: Uint8Array; ttlMs: number },
): Promise<Date | undefined> {
  const row = await db
    .insertInto("auth_challenges")
    .columns(["id", "tenant_id", "agent_id", "nonce", "expires_at"])
    .expression((eb) =>
      eb
        .selectFrom("agents")
        .select([
          sql<string>`${input.challengeId}::uuid`.as("id"),
          "tenant_id",
          "id as agent_id",
          sql<Uint8Array>`${input.nonce}::bytea`.as("nonce"),
          sql<Date>`now() + ${`${input.ttlMs} milliseconds`}::interval`.as("expires_at"),
        ])
        .where("id", "=", input.agentId)
        .where("identity_public_key", "=", input.identityPublicKey)
        .where("state", "=", "ACTIVE"),
    )
    .returning(["expires_at"])
    .executeTakeFirst();
  return row?.expires_at;
}

/** A consumed challenge with the key and state its agent has now. */
export interface ConsumedChallenge {
  agentId: string;
  tenantId: string;
  nonce: Uint8Array;
  fresh: boolean;
  identityPublicKey: Uint8Array;
  agentState: AgentStateName;
}

/** Deletes the challenge (single use, whatever happens next) and returns it joined with its agent. */
export async function consumeChallenge(db: Executor, challengeId: string): Promise<ConsumedChallenge | undefined> {
  const row = await db
    .deleteFrom("auth_challenges")
    .using("agents")
    .whereRef("agents.id", "=", "auth_challenges.agent_id")
    .where("auth_challenges.id", "=", challengeId)
    .returning([
      "auth_challenges.agent_id",
      "auth_challenges.tenant_id",
      "auth_challenges.nonce",
      sql<boolean>`auth_challenges.expires_at > now()`.as("fresh"),
      "agents.identity_public_key",
      "agents.state",
    ])
    .executeTakeFirst();
  if (!row) return undefined;
  return {
    agentId: row.agent_id,
    tenantId: row.tenant_id,
    nonce: new Uint8Array(row.nonce),
    fresh: row.fresh,
    identityPublicKey: new Uint8Array(row.identity_public_key),
    agentState: row.state,
  };
}

/**
 * Issues the agent's session only if the agent is still ACTIVE; the row is keyed by agent, so
 * it replaces (fences out) the previous session. Returns the expiry, or undefined when refused.
 */
export async function upsertSessionForActiveAgent(
  db: Executor,
  input: { sessionId: string; agentId: string; tokenHash: Uint8Array; ttlMs: number },
): Promise<Date | undefined> {
  const row = await db
    .insertInto("sessions")
    .columns(["agent_id", "id", "tenant_id", "token_hash", "expires_at"])
    .expression((eb) =>
      eb
        .selectFrom("agents")
        .select([
          "id as agent_id",
          sql<string>`${input.sessionId}::uuid`.as("id"),
          "tenant_id",
          sql<Uint8Array>`${input.tokenHash}::bytea`.as("token_hash"),
          sql<Date>`now() + ${`${input.ttlMs} milliseconds`}::interval`.as("expires_at"),
        ])
        .where("id", "=", input.agentId)
        .where("state", "=", "ACTIVE"),
    )
    .onConflict((oc) =>
      oc.column("agent_id").doUpdateSet((eb) => ({
        id: eb.ref("excluded.id"),
        token_hash: eb.ref("excluded.token_hash"),
        created_at: sql<Date>`now()`,
        expires_at: eb.ref("excluded.expires_at"),
      })),
    )
    .returning(["expires_at"])
    .executeTakeFirst();
  return row?.expires_at;
}

/**
 * Deletes at most `limit` challenges that expired before `before` (retention, in batches);
 * returns how many. An expired challenge can never be answered, so any `before` ≤ now is safe.
 */
export async function deleteChallengesExpiredBefore(db: Executor, before: Date, limit: number): Promise<number> {
  return await deleteBatchBefore(db, { table: "auth_challenges", column: "expires_at" }, before, limit);
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
