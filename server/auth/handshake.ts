import { randomUUID } from "node:crypto";
import type { Bus } from "../bus/bus.js";
import type { Executor } from "../db/database.js";
import type { AgentStateName } from "../db/schema.js";
import { FailedPreconditionError, NotFoundError, PermissionDeniedError, UnauthenticatedError } from "../errors/errors.js";
import { tenantSuspendedError } from "../tenancy/tenant-gate.js";
import { verifyEd25519 } from "../../client/protocol/ed25519.js";
import { constantTimeEqual, newSecret } from "../../client/protocol/secrets.js";
import { authTranscript } from "../../client/protocol/transcript.js";
import { challengeNonce, keyThatTagged, type MacKey, mintChallengeId, parseChallengeId, type ParsedChallengeId } from "./challenge-mac.js";
import { findHandshakeAgent, issueSessionForChallenge, recordChallengeUse } from "./session-store.js";

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
  /** It replaced a session row of the agent, and `session_changed` was announced. */
  replacedPrevious: boolean;
}

/** What the handshake needs from the rest of the gateway. */
export interface HandshakeDeps {
  keys: { signing(): MacKey; verifying(): readonly MacKey[] };
  tenantGate: { isSuspended(tenantId: string): boolean };
  bus: Pick<Bus, "publish" | "statementNotification" | "deliverLocal">;
}

/** An agent's immutable facts (its key and tenant never change for its id). */
interface AgentFacts {
  identityPublicKey: Uint8Array;
  tenantId: string;
}

const UNKNOWN = "challenge is unknown or was already used: begin a new handshake";
const OTHER_AGENT = "challenge is unknown or was issued to another agent: begin a new handshake";
const EXPIRED = "challenge has expired: begin a new handshake";
const BAD_SIGNATURE = "signature does not verify: sign the auth transcript with the identity key";

/**
 * The challenge–response handshake with stateless challenges (server/auth/challenge-mac.ts):
 * Begin reads the agent (one SELECT) and writes nothing; Complete verifies the signature over
 * the recomputed nonce and then records the challenge's single use, issues the session and (if
 * it replaced one) announces `session_changed`, in ONE statement. Refusals, in this order: unknown or another agent's id, expired, already
 * used, bad signature, agent state, suspended tenant. Each refused Complete for the id's own
 * agent uses the challenge up, like a successful one.
 */
export class HandshakeService {
  /** Key and tenant per agent id, so Complete needs no read first (bounded; cleared when full). */
  private readonly facts = new Map<string, AgentFacts>();

  constructor(
    private readonly db: Executor,
    private readonly deps: HandshakeDeps,
    private readonly maxCachedAgents = 50_000,
  ) {}

  /** Issues a single-use challenge bound to the agent, if it is ACTIVE and holds this key. */
  async begin(input: { agentId: string; identityPublicKey: Uint8Array; ttlMs: number }): Promise<Challenge> {
    const agent = await findHandshakeAgent(this.db, input.agentId);
    if (!agent || !constantTimeEqual(agent.identityPublicKey, input.identityPublicKey)) {
      throw new NotFoundError("no agent with that id and identity key");
    }
    if (agent.state !== "ACTIVE") throw stateRefusal(agent.state);
    this.remember(input.agentId, agent);
    const key = this.deps.keys.signing();
    const expiresAtMs = Math.floor(agent.nowMs) + input.ttlMs;
    const id = mintChallengeId(key, input.agentId, expiresAtMs);
    return { challengeId: id.text, nonce: challengeNonce(key, id, input.agentId, agent.identityPublicKey), expiresAt: new Date(expiresAtMs) };
  }

  /**
   * Verifies the signed challenge and issues a session, replacing (fencing out) the agent's
   * previous one. A forged id, or one minted for another agent, is refused before any database
   * work and writes nothing.
   */
  async complete(input: { challengeId: string; agentId: string; signature: Uint8Array; sessionTtlMs: number }): Promise<IssuedSession> {
    const id = parseChallengeId(input.challengeId);
    if (!id) throw new UnauthenticatedError(UNKNOWN);
    const key = keyThatTagged(this.deps.keys.verifying(), id, input.agentId);
    if (!key) throw new UnauthenticatedError(OTHER_AGENT);
    const facts = this.facts.get(input.agentId) ?? (await this.load(input.agentId));
    if (!facts) throw new UnauthenticatedError(UNKNOWN);
    const use = { challengeId: id.text, challengeExpiresAt: new Date(id.expiresAtMs), agentId: input.agentId };
    const transcript = authTranscript({ challengeId: id.text, nonce: challengeNonce(key, id, input.agentId, facts.identityPublicKey), agentId: input.agentId, publicKey: facts.identityPublicKey });
    if (!verifyEd25519(facts.identityPublicKey, transcript, input.signature)) {
      const refused = await recordChallengeUse(this.db, use);
      if (refused && !refused.fresh) throw new UnauthenticatedError(EXPIRED);
      if (refused?.usedBefore) throw new UnauthenticatedError(UNKNOWN);
      throw new UnauthenticatedError(BAD_SIGNATURE);
    }
    const minted = newSecret("session");
    const sessionId = randomUUID();
    // The in-memory gate spares a suspended tenant's agent the write; the statement checks the
    // tenant again, so a suspension this replica has not heard of yet wins too.
    if (!this.deps.tenantGate.isSuspended(facts.tenantId)) {
      // Other replicas may hold the previous session in cache or a stream opened with it: the
      // statement announces the replacement itself (NOTIFY on commit, no extra round trip). With
      // no previous session row there is nothing to fence, and nothing is announced.
      const notify = this.deps.bus.statementNotification("session_changed", input.agentId);
      const issued = await issueSessionForChallenge(this.db, { ...use, sessionId, tokenHash: minted.hash, ttlMs: input.sessionTtlMs, notifyIfReplaced: notify });
      if (issued) {
        if (issued.replaced) {
          if (notify) this.deps.bus.deliverLocal("session_changed", input.agentId);
          else await this.deps.bus.publish("session_changed", input.agentId);
        }
        return { sessionId, agentId: input.agentId, tenantId: facts.tenantId, token: minted.secret, expiresAt: issued.expiresAt, replacedPrevious: issued.replaced };
      }
    }
    throw await this.refusal(id, use, facts);
  }

  /** Why a signed challenge got no session (recording its use); the error to answer. */
  private async refusal(id: ParsedChallengeId, use: { challengeId: string; challengeExpiresAt: Date; agentId: string }, facts: AgentFacts): Promise<Error> {
    const refused = await recordChallengeUse(this.db, use);
    if (!refused) return new UnauthenticatedError(UNKNOWN);
    if (!refused.fresh) return new UnauthenticatedError(EXPIRED);
    if (refused.usedBefore) return new UnauthenticatedError(UNKNOWN);
    if (refused.agentState !== "ACTIVE") return stateRefusal(refused.agentState);
    if (refused.tenantSuspended || this.deps.tenantGate.isSuspended(facts.tenantId)) return tenantSuspendedError();
    // Only a race (e.g. revoked and un-revoked while this ran) gets here.
    return new UnauthenticatedError(`challenge ${id.text} could not be answered: begin a new handshake`);
  }

  private async load(agentId: string): Promise<AgentFacts | undefined> {
    const agent = await findHandshakeAgent(this.db, agentId);
    if (agent) this.remember(agentId, agent);
    return agent;
  }

  private remember(agentId: string, agent: AgentFacts): void {
    if (this.facts.has(agentId)) return;
    if (this.facts.size >= this.maxCachedAgents) this.facts.clear();
    this.facts.set(agentId, { identityPublicKey: agent.identityPublicKey, tenantId: agent.tenantId });
  }
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
