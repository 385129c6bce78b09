import { randomBytes, randomUUID } from "node:crypto";
import { getAgentById } from "../agents/agent-store.js";
import type { Executor } from "../db/database.js";
import type { AgentStateName } from "../db/schema.js";
import { FailedPreconditionError, NotFoundError, PermissionDeniedError, UnauthenticatedError } from "../errors/errors.js";
import { verifyEd25519 } from "../../client/protocol/ed25519.js";
import { constantTimeEqual, newSecret } from "../../client/protocol/secrets.js";
import { authTranscript } from "../../client/protocol/transcript.js";
import { consumeChallenge, insertChallengeForActiveAgent, upsertSessionForActiveAgent } from "./session-store.js";

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
 * challenge is stored only for an ACTIVE agent holding that key; the reason for a refusal is
 * looked up only when there is one.
 */
export async function beginHandshake(
  db: Executor,
  input: { agentId: string; identityPublicKey: Uint8Array; ttlMs: number },
): Promise<Challenge> {
  const challengeId = randomUUID();
  const nonce = new Uint8Array(randomBytes(32));
  const expiresAt = await insertChallengeForActiveAgent(db, { challengeId, agentId: input.agentId, identityPublicKey: input.identityPublicKey, nonce, ttlMs: input.ttlMs });
  if (expiresAt) return { challengeId, nonce, expiresAt };
  const agent = await getAgentById(db, input.agentId);
  if (!agent || !constantTimeEqual(agent.identityPublicKey, input.identityPublicKey)) {
    throw new NotFoundError("no agent with that id and identity key");
  }
  throw stateRefusal(agent.state);
}

/**
 * Verifies the signed challenge and issues a session. The challenge is consumed before anything
 * else is checked, so it can be tried once, whatever the outcome. Issuing a session replaces
 * (fences out) the agent's previous one.
 */
export async function completeHandshake(
  db: Executor,
  input: { challengeId: string; agentId: string; signature: Uint8Array; sessionTtlMs: number },
): Promise<IssuedSession> {
  const challenge = await consumeChallenge(db, input.challengeId);
  if (!challenge) throw new UnauthenticatedError("challenge is unknown or was already used: begin a new handshake");
  if (challenge.agentId !== input.agentId) throw new UnauthenticatedError("challenge was issued to another agent");
  if (!challenge.fresh) throw new UnauthenticatedError("challenge has expired: begin a new handshake");
  const transcript = authTranscript({
    challengeId: input.challengeId,
    nonce: challenge.nonce,
    agentId: input.agentId,
    publicKey: challenge.identityPublicKey,
  });
  if (!verifyEd25519(challenge.identityPublicKey, transcript, input.signature)) {
    throw new UnauthenticatedError("signature does not verify: sign the auth transcript with the identity key");
  }
  if (challenge.agentState !== "ACTIVE") throw stateRefusal(challenge.agentState);
  const minted = newSecret("session");
  const sessionId = randomUUID();
  // Only an agent that is still ACTIVE gets the session: a revocation committed between the
  // challenge's consumption and this statement must win.
  const expiresAt = await upsertSessionForActiveAgent(db, { sessionId, agentId: input.agentId, tokenHash: minted.hash, ttlMs: input.sessionTtlMs });
  if (!expiresAt) throw new PermissionDeniedError("this agent is revoked", "AGENT_REVOKED");
  return { sessionId, agentId: input.agentId, tenantId: challenge.tenantId, token: minted.secret, expiresAt };
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
