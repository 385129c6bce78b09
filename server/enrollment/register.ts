import { randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import { appendAudit } from "../audit/audit-log.js";
import { findLiveAgentByKey, insertAgent, isKeyRevoked } from "../agents/agent-store.js";
import type { AgentRecord } from "../agents/agent-store.js";
import { isUniqueViolation } from "../db/errors.js";
import type { Schema } from "../db/schema.js";
import type { Executor } from "../db/database.js";
import { AlreadyExistsError, PermissionDeniedError, UnauthenticatedError } from "../errors/errors.js";
import { verifyEd25519 } from "../../client/protocol/ed25519.js";
import { hashSecret, parseSecret } from "../../client/protocol/secrets.js";
import { registerTranscript } from "../../client/protocol/transcript.js";
import { verificationCode } from "../../client/protocol/verification-code.js";
import { findTokenByHash, redeemToken, tokenState } from "./token-store.js";

/** What the agent sends to Register, already validated for shape at the edge. */
export interface RegisterInput {
  enrollmentToken: string;
  identityPublicKey: Uint8Array;
  name: string;
  host: { hostname: string; os: string; arch: string; agentVersion: string; labels: Record<string, string> };
  proofSignature: Uint8Array;
}

/**
 * Redeems an enrollment token and binds the identity key to a new agent, all in one
 * transaction: a failure at any step (revoked key, pinned name, lost race) leaves the token's
 * use count and the agents table as they were. Error codes: docs/protocol.md.
 */
export async function registerAgent(db: Kysely<Schema>, input: RegisterInput, tenantGate?: { assertActive(tenantId: string): void }): Promise<AgentRecord> {
  if (!parseSecret(input.enrollmentToken, "enrollment")) {
    throw new UnauthenticatedError("enrollment token is not valid");
  }
  // The proof costs no database round trip, so check it first: garbage stops here.
  const transcript = registerTranscript({ token: input.enrollmentToken, publicKey: input.identityPublicKey, name: input.name });
  if (!verifyEd25519(input.identityPublicKey, transcript, input.proofSignature)) {
    throw new UnauthenticatedError("proof of possession does not verify: sign the register transcript with the identity key");
  }
  const tokenHash = hashSecret(input.enrollmentToken);
  try {
    return await db.transaction().execute(async (trx) => {
      if (await isKeyRevoked(trx, input.identityPublicKey)) throw new PermissionDeniedError("this identity key is revoked", "AGENT_REVOKED");
      const existing = await findLiveAgentByKey(trx, input.identityPublicKey);
      if (existing) {
        // A retry of a Register whose answer was lost: same key (proven above), same token.
        // Answer with the agent it created instead of stranding the caller without its id.
        const token = await findTokenByHash(trx, tokenHash);
        if (token && existing.enrollmentTokenId === token.id && existing.name === input.name) return existing;
        throw new AlreadyExistsError(`this identity key is already bound to agent ${existing.id}`, "KEY_ALREADY_BOUND");
      }
      const token = await redeemToken(trx, tokenHash);
      if (!token) throw await tokenRefusal(trx, tokenHash);
      // A suspended tenant enrolls nobody; throwing here rolls the token's use back.
      tenantGate?.assertActive(token.tenantId);
      if (token.pinnedAgentName && token.pinnedAgentName !== input.name) {
        throw new PermissionDeniedError(`this enrollment token is pinned to agent name "${token.pinnedAgentName}"`, "TOKEN_NAME_MISMATCH");
      }
      const agent = await insertAgent(trx, {
        id: randomUUID(),
        tenantId: token.tenantId,
        name: input.name,
        identityPublicKey: input.identityPublicKey,
        verificationCode: verificationCode(input.identityPublicKey),
        state: token.requiresApproval ? "PENDING_APPROVAL" : "ACTIVE",
        // What the operator set and what the agent claims stay apart: only the operator's
        // labels target rollouts and selectors unless an operator asks for host labels.
        labels: token.labels,
        hostLabels: input.host.labels,
        hostname: input.host.hostname,
        os: input.host.os,
        arch: input.host.arch,
        agentVersion: input.host.agentVersion,
        enrollmentTokenId: token.id,
      });
      await appendAudit(trx, {
        tenantId: agent.tenantId,
        actor: { kind: "agent", agentId: agent.id },
        action: "agent.registered",
        target: `agent:${agent.id}`,
        data: { name: agent.name, state: agent.state, enrollment_token_id: token.id, verification_code: agent.verificationCode },
      });
      return agent;
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new AlreadyExistsError("this identity key is already bound to an agent");
    throw err;
  }
}

async function tokenRefusal(db: Executor, tokenHash: Uint8Array): Promise<Error> {
  const token = await findTokenByHash(db, tokenHash);
  if (!token) return new UnauthenticatedError("enrollment token is not valid");
  const state = tokenState(token);
  if (state === "revoked") return new UnauthenticatedError("enrollment token was revoked", "TOKEN_REVOKED");
  if (state === "used") return new UnauthenticatedError("enrollment token has no uses left", "TOKEN_USED");
  if (state === "expired") return new UnauthenticatedError("enrollment token has expired", "TOKEN_EXPIRED");
  // Active now but the conditional update missed: it expired or was used in between.
  return new UnauthenticatedError("enrollment token can no longer be redeemed");
}
