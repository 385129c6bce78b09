import type { Kysely } from "kysely";
import { appendAudit } from "../audit/audit-log.js";
import { deleteAgentSessions } from "../auth/session-store.js";
import type { Bus } from "../bus/bus.js";
import { enqueueForTenant } from "../control/command-store.js";
import { peerRevokedBody } from "../control/commands.js";
import type { AgentStateName, Schema } from "../db/schema.js";
import { FailedPreconditionError, NotFoundError } from "../errors/errors.js";
import type { Operator } from "../identity/principal.js";
import { normalizeVerificationCode } from "../../client/protocol/verification-code.js";
import { type AgentRecord, getAgent, setAgentState } from "./agent-store.js";

/** An operator's change to an agent's lifecycle. */
export type AgentTransition =
  | { kind: "approve"; expectedVerificationCode: string }
  | { kind: "reject"; reason: string }
  | { kind: "revoke"; reason: string }
  | { kind: "unrevoke"; note: string }
  | { kind: "retire"; reason: string };

/**
 * The agent state machine of docs/protocol.md, as the one table every check reads: which
 * states each operator transition may start from and where it leads. Anything not in it is
 * refused with FAILED_PRECONDITION and writes nothing, also repeating a transition that
 * already happened (revoking twice, approving an ACTIVE agent). Un-revoke leads back to the
 * state the agent had when it was revoked, so revoke → un-revoke cannot skip an approval.
 */
export const AGENT_TRANSITIONS: Readonly<Record<AgentTransition["kind"], { from: readonly AgentStateName[]; to: AgentStateName | "state before the revoke"; action: string; endsSessions: boolean }>> = {
  approve: { from: ["PENDING_APPROVAL"], to: "ACTIVE", action: "agent.approved", endsSessions: false },
  reject: { from: ["PENDING_APPROVAL"], to: "REJECTED", action: "agent.rejected", endsSessions: true },
  // A revoked agent's session row stays so that its calls answer PERMISSION_DENIED (the state
  // check in SessionResolver) rather than a vague UNAUTHENTICATED; un-revoke deletes it, so the
  // agent must handshake again.
  revoke: { from: ["ACTIVE", "PENDING_APPROVAL"], to: "REVOKED", action: "agent.revoked", endsSessions: false },
  unrevoke: { from: ["REVOKED"], to: "state before the revoke", action: "agent.unrevoked", endsSessions: true },
  retire: { from: ["ACTIVE", "PENDING_APPROVAL", "REJECTED", "REVOKED"], to: "RETIRED", action: "agent.retired", endsSessions: true },
};

/**
 * Applies a lifecycle transition in one transaction: the state change, the end of the agent's
 * sessions and challenges (for revoke, reject, retire) and the audit record commit together.
 * After commit the change is announced on the bus, so every replica drops cached sessions and
 * closes the agent's stream. Handshake challenges are left to expire: a CompleteAuthHandshake
 * in flight then still proves the key and gets the code its new state documents.
 */
export async function transitionAgent(
  db: Kysely<Schema>,
  bus: Bus,
  operator: Operator,
  agentId: string,
  transition: AgentTransition,
): Promise<AgentRecord> {
  const rule = AGENT_TRANSITIONS[transition.kind];
  const result = await db.transaction().execute(async (trx) => {
    const agent = await getAgent(trx, operator.tenantId, agentId, true);
    if (!agent) throw new NotFoundError(`no agent ${agentId}`);
    if (!rule.from.includes(agent.state)) {
      throw new FailedPreconditionError(`cannot ${transition.kind} an agent in state ${agent.state}`, "INVALID_TRANSITION");
    }
    const to = rule.to === "state before the revoke" ? (agent.revokedFrom ?? "PENDING_APPROVAL") : rule.to;
    if (transition.kind === "approve" && transition.expectedVerificationCode) {
      const expected = normalizeVerificationCode(transition.expectedVerificationCode);
      if (expected !== normalizeVerificationCode(agent.verificationCode)) {
        throw new FailedPreconditionError("verification code does not match the agent's: do not approve, the key may have been substituted");
      }
    }
    const reason = "reason" in transition ? transition.reason : "note" in transition ? transition.note : "";
    const updated = await setAgentState(trx, { tenantId: operator.tenantId, id: agentId, from: agent.state, state: to, reason });
    if (rule.endsSessions) await deleteAgentSessions(trx, agentId);
    if (transition.kind === "revoke") {
      // Peers learn the revoked identity through the same persisted, acknowledged channel as
      // every other command, so an agent offline now still hears of it when it reconnects.
      const body = peerRevokedBody({ id: agentId, identityPublicKey: agent.identityPublicKey, revokedAt: updated.revokedAt ?? new Date() });
      await enqueueForTenant(trx, { tenantId: operator.tenantId, exceptAgentId: agentId, kind: "peer_revoked", body });
    }
    await appendAudit(trx, {
      tenantId: operator.tenantId,
      actor: { kind: "operator", keyId: operator.keyId },
      action: rule.action,
      target: `agent:${agentId}`,
      data: { from: agent.state, to, ...(reason ? { [transition.kind === "unrevoke" ? "note" : "reason"]: reason } : {}) },
    });
    return updated;
  });
  await bus.publish("agent_changed", agentId);
  if (transition.kind === "revoke") await bus.publish("commands_queued", { scope: "tenant", tenantId: operator.tenantId });
  return result;
}
