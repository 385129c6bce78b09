// The agent state machine (docs/protocol.md, "Agent state machine") walked pair by pair against
// the real gateway: every operator action from every state either follows the table or is
// refused with FAILED_PRECONDITION / INVALID_TRANSITION and writes no audit record.
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { AgentState } from "../gen/agentgateway/v1/common_pb.js";
import { AuditService } from "../gen/agentgateway/admin/v1/audit_pb.js";
import { gatewayClient, register } from "../agent/lib/direct.js";
import { sign } from "../client/protocol/ed25519.js";
import { authTranscript } from "../client/protocol/transcript.js";
import { Reason, reasonOf } from "../client/reasons.js";
import { AGENT_TRANSITIONS } from "../server/agents/agent-admin.js";
import type { AgentStateName } from "../server/db/schema.js";
import { mintToken, newIdentity } from "./support/agents.js";
import { expectCode } from "./support/expect-code.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";

let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway({ registerRatePerSource: "1000/s:1000" });
});

afterAll(async () => {
  await gw?.stop();
});

type Action = keyof typeof AGENT_TRANSITIONS;
const ACTIONS: Action[] = ["approve", "reject", "revoke", "unrevoke", "retire"];

/** Every reachable state, with how to get there from a fresh registration (pending approval). */
const STATES: Record<string, { state: AgentStateName; path: Action[] }> = {
  PENDING_APPROVAL: { state: "PENDING_APPROVAL", path: [] },
  ACTIVE: { state: "ACTIVE", path: ["approve"] },
  REJECTED: { state: "REJECTED", path: ["reject"] },
  "REVOKED (from ACTIVE)": { state: "REVOKED", path: ["approve", "revoke"] },
  "REVOKED (from PENDING_APPROVAL)": { state: "REVOKED", path: ["revoke"] },
  RETIRED: { state: "RETIRED", path: ["retire"] },
};

async function act(id: string, action: Action, code = "") {
  const agents = gw.admin(AgentService);
  switch (action) {
    case "approve":
      return agents.approveAgent({ id, expectedVerificationCode: code });
    case "reject":
      return agents.rejectAgent({ id, reason: "walk" });
    case "revoke":
      return agents.revokeAgent({ id, reason: "walk" });
    case "unrevoke":
      return agents.unrevokeAgent({ id, note: "walk" });
    case "retire":
      return agents.retireAgent({ id, reason: "walk" });
  }
}

async function auditCount(): Promise<number> {
  const { events } = await gw.admin(AuditService).listAuditEvents({ pageSize: 1000 });
  return events.length;
}

async function agentIn(path: Action[]): Promise<{ id: string; code: string; identity: ReturnType<typeof newIdentity> }> {
  const identity = newIdentity();
  const token = await mintToken(gw, { requiresApproval: true });
  const reg = await register(gatewayClient(gw.transport), { token, identity, name: `walk-${Math.random().toString(36).slice(2, 8)}` });
  for (const step of path) await act(reg.agentId, step);
  return { id: reg.agentId, code: reg.verificationCode, identity };
}

describe("agent state machine", () => {
  for (const [label, start] of Object.entries(STATES)) {
    for (const action of ACTIONS) {
      const rule = AGENT_TRANSITIONS[action];
      const allowed = rule.from.includes(start.state);
      it(`${action} from ${label}: ${allowed ? "allowed" : "refused"}`, async () => {
        const agent = await agentIn(start.path);
        const before = await auditCount();
        if (!allowed) {
          const err = await expectCode(act(agent.id, action, agent.code), Code.FailedPrecondition);
          expect(reasonOf(err)).toBe(Reason.INVALID_TRANSITION);
          expect(await auditCount()).toBe(before);
          const { agent: after } = await gw.admin(AgentService).getAgent({ id: agent.id });
          expect(AgentState[after!.state]).toBe(start.state);
          return;
        }
        const res = await act(agent.id, action, agent.code);
        const expected = rule.to === "state before the revoke" ? (start.path.includes("approve") ? "ACTIVE" : "PENDING_APPROVAL") : rule.to;
        expect(AgentState[res.agent!.state]).toBe(expected);
        expect(await auditCount()).toBe(before + 1);
      });
    }
  }

  it("revoke then un-revoke of a pending agent cannot skip the approval and its code check", async () => {
    const agent = await agentIn(["revoke", "unrevoke"]);
    const { agent: got } = await gw.admin(AgentService).getAgent({ id: agent.id });
    expect(got!.state).toBe(AgentState.PENDING_APPROVAL);
    await expectCode(gw.admin(AgentService).approveAgent({ id: agent.id, expectedVerificationCode: "0000-0000" }), Code.FailedPrecondition, /verification code/);
    const approved = await gw.admin(AgentService).approveAgent({ id: agent.id, expectedVerificationCode: agent.code });
    expect(approved.agent!.state).toBe(AgentState.ACTIVE);
  });

  for (const [action, code, reason] of [
    ["revoke", Code.PermissionDenied, Reason.AGENT_REVOKED],
    ["retire", Code.FailedPrecondition, Reason.AGENT_RETIRED],
  ] as const) {
    it(`CompleteAuthHandshake with a challenge issued before a ${action} answers the documented code`, async () => {
      const agent = await agentIn(["approve"]);
      const client = gatewayClient(gw.transport);
      const challenge = await client.beginAuthHandshake({ agentId: agent.id, identityPublicKey: agent.identity.publicKey });
      await act(agent.id, action);
      const transcript = authTranscript({ challengeId: challenge.challengeId, nonce: challenge.nonce, agentId: agent.id, publicKey: agent.identity.publicKey });
      const complete = client.completeAuthHandshake({ challengeId: challenge.challengeId, agentId: agent.id, signature: sign(agent.identity.privateKey, transcript) });
      const err = await expectCode(complete, code);
      expect(reasonOf(err)).toBe(reason);
    });
  }
});
