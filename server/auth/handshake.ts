import { randomBytes, randomUUID } from "node:crypto";
import { sql } from "kysely";
import type { Kysely } from "kysely";
import { getAgentById } from "../agents/agent-store.js";
import type { AgentStateName, Schema } from "../db/schema.js";
import { FailedPreconditionError, NotFoundError, PermissionDeniedError, UnauthenticatedError } from "../errors/errors.js";
import { verifyEd25519 } from "../../client/protocol/ed25519.js";
import { constantTimeEqual, newSecret } from "../../client/protocol/secrets.js";
import { authTranscript } from "../../client/protocol/transcript.js";

/** A challenge handed to an agent. */
export interface Challenge {
  challengeId: string;
  nonce: Uint8Array;
  expiresAt: Date;
}

/** A freshly issued session; `token` exists only in this object and in the response. */
export interface IssuedSession {
  sessionId: string;
  agentId: string;
  tenantId: string;
  token: string;
  expiresAt: Date;
}

/**
 * Issues a single-use challenge bound to the agent. One round trip on the happy path: the
 * INSERT … SELECT only produces a row for an ACTIVE agent holding that key; the reason for a
 * refusal is looked up only when there is one.
 */
export async function beginHandshake(
  db: Kysely<Schema>,
  input: { agentId: string; identityPublicKey: Uint8Array; ttlMs: number },
): Promise<Challenge> {
  const challengeId = randomUUID();
  const nonce = new Uint8Array(randomBytes(32));
  const row = await db
    .insertInto("auth_challenges")
    .columns(["id", "tenant_id", "agent_id", "nonce", "expires_at"])
    .expression((eb) =>
      eb
        .selectFrom("agents")
        .select([
          sql<string>`${challengeId}::uuid`.as("id"),
          "tenant_id",
          "id as agent_id",
          sql<Uint8Array>`${nonce}::bytea`.as("nonce"),
          sql<Date>`now() + ${`${input.ttlMs} milliseconds`}::interval`.as("expires_at"),
        ])
        .where("id", "=", input.agentId)
        .where("identity_public_key", "=", input.identityPublicKey)
        .where("state", "=", "ACTIVE"),
    )
    .returning(["expires_at"])
    .executeTakeFirst();
  if (row) return { challengeId, nonce, expiresAt: row.expires_at };
  const agent = await getAgentById(db, input.agentId);
  if (!agent || !constantTimeEqual(agent.identityPublicKey, input.identityPublicKey)) {
    throw new NotFoundError("no agent with that id and identity key");
  }
  throw stateRefusal(agent.state);
}

/**
 * Verifies the signed challenge and issues a session. The challenge is consumed by the DELETE
 * before anything else is checked, so it can be tried once, whatever the outcome. The session
 * row is keyed by agent: issuing one replaces (fences out) the agent's previous session.
 */
export async function completeHandshake(
  db: Kysely<Schema>,
  input: { challengeId: string; agentId: string; signature: Uint8Array; sessionTtlMs: number },
): Promise<IssuedSession> {
  const challenge = await db
    .deleteFrom("auth_challenges")
    .using("agents")
    .whereRef("agents.id", "=", "auth_challenges.agent_id")
    .where("auth_challenges.id", "=", input.challengeId)
    .returning([
      "auth_challenges.agent_id",
      "auth_challenges.tenant_id",
      "auth_challenges.nonce",
      sql<boolean>`auth_challenges.expires_at > now()`.as("fresh"),
      "agents.identity_public_key",
      "agents.state",
    ])
    .executeTakeFirst();
  if (!challenge) throw new UnauthenticatedError("challenge is unknown or was already used: begin a new handshake");
  if (challenge.agent_id !== input.agentId) throw new UnauthenticatedError("challenge was issued to another agent");
  if (!challenge.fresh) throw new UnauthenticatedError("challenge has expired: begin a new handshake");
  const transcript = authTranscript({
    challengeId: input.challengeId,
    nonce: new Uint8Array(challenge.nonce),
    agentId: input.agentId,
    publicKey: new Uint8Array(challenge.identity_public_key),
  });
  if (!verifyEd25519(new Uint8Array(challenge.identity_public_key), transcript, input.signature)) {
    throw new UnauthenticatedError("signature does not verify: sign the auth transcript with the identity key");
  }
  if (challenge.state !== "ACTIVE") throw stateRefusal(challenge.state);
  const minted = newSecret("session");
  const sessionId = randomUUID();
  // Only an agent that is still ACTIVE gets the session: a revocation committed between the
  // DELETE above and this statement must win.
  const session = await db
    .insertInto("sessions")
    .columns(["agent_id", "id", "tenant_id", "token_hash", "expires_at"])
    .expression((eb) =>
      eb
        .selectFrom("agents")
        .select([
          "id as agent_id",
          sql<string>`${sessionId}::uuid`.as("id"),
          "tenant_id",
          sql<Uint8Array>`${minted.hash}::bytea`.as("token_hash"),
          sql<Date>`now() + ${`${input.sessionTtlMs} milliseconds`}::interval`.as("expires_at"),
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
  if (!session) throw new PermissionDeniedError("this agent is revoked", "AGENT_REVOKED");
  return { sessionId, agentId: input.agentId, tenantId: challenge.tenant_id, token: minted.secret, expiresAt: session.expires_at };
}

/** Deletes challenges past their expiry; returns how many. Run periodically. */
export async function deleteExpiredChallenges(db: Kysely<Schema>): Promise<number> {
  const result = await db.deleteFrom("auth_challenges").where("expires_at", "<", sql<Date>`now()`).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** The error for an agent whose state does not allow a handshake. */
export function stateRefusal(state: AgentStateName): Error {
  switch (state) {
    case "REVOKED":
      return new PermissionDeniedError("this agent is revoked", "AGENT_REVOKED");
    case "PENDING_APPROVAL":
      return new FailedPreconditionError("awaiting approval: an operator must approve this agent before it can authenticate", "AWAITING_APPROVAL");
    case "REJECTED":
      return new FailedPreconditionError("this agent's registration was rejected: enroll again with a new token", "AGENT_REJECTED");
    case "RETIRED":
      return new FailedPreconditionError("this agent was retired: enroll again with a new token", "AGENT_RETIRED");
    default:
      return new FailedPreconditionError(`agent is in state ${state}`);
  }
}
