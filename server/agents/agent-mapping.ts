import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AgentStatus } from "../../gen/agentgateway/v1/ingest_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type AgentSchema, Liveness } from "../../gen/agentgateway/admin/v1/agents_pb.js";
import { AgentState } from "../../gen/agentgateway/v1/common_pb.js";
import type { AgentStateName } from "../db/schema.js";
import type { AgentRecord } from "./agent-store.js";

const TO_PROTO: Record<AgentStateName, AgentState> = {
  PENDING_APPROVAL: AgentState.PENDING_APPROVAL,
  ACTIVE: AgentState.ACTIVE,
  REJECTED: AgentState.REJECTED,
  REVOKED: AgentState.REVOKED,
  RETIRED: AgentState.RETIRED,
};

/** Stored state name → proto enum. */
export function toProtoAgentState(state: AgentStateName): AgentState {
  return TO_PROTO[state];
}

/** Proto enum → stored state name (UNSPECIFIED has none). */
export function fromProtoAgentState(state: AgentState): AgentStateName | undefined {
  return (Object.keys(TO_PROTO) as AgentStateName[]).find((k) => TO_PROTO[k] === state);
}

/** Liveness from the last heartbeat and the configured thresholds. */
export function livenessOf(lastSeenAt: Date | null, now: number, staleAfterMs: number, offlineAfterMs: number): Liveness {
  if (!lastSeenAt) return Liveness.OFFLINE;
  const age = now - lastSeenAt.getTime();
  if (age < staleAfterMs) return Liveness.ONLINE;
  if (age < offlineAfterMs) return Liveness.STALE;
  return Liveness.OFFLINE;
}

/** An agent as the admin API shows it. */
export function toProtoAgent(agent: AgentRecord, thresholds: { staleAfterMs: number; offlineAfterMs: number }): MessageInitShape<typeof AgentSchema> {
  return {
    id: agent.id,
    tenantId: agent.tenantId,
    name: agent.name,
    state: toProtoAgentState(agent.state),
    identityPublicKey: agent.identityPublicKey,
    verificationCode: agent.verificationCode,
    labels: agent.labels,
    host: { hostname: agent.hostname, os: agent.os, arch: agent.arch, agentVersion: agent.agentVersion, labels: agent.hostLabels },
    agentVersion: agent.agentVersion,
    liveness: livenessOf(agent.lastSeenAt, Date.now(), thresholds.staleAfterMs, thresholds.offlineAfterMs),
    lastSeenAt: agent.lastSeenAt ? timestampFromDate(agent.lastSeenAt) : undefined,
    createdAt: timestampFromDate(agent.createdAt),
    approvedAt: agent.approvedAt ? timestampFromDate(agent.approvedAt) : undefined,
    revokedAt: agent.revokedAt ? timestampFromDate(agent.revokedAt) : undefined,
    revokeReason: agent.revokeReason ?? "",
    enrollmentTokenId: agent.enrollmentTokenId ?? "",
    reportedStatus: AgentStatus[agent.reportedStatus],
    uptime: durationFromMs(agent.uptimeSeconds * 1000),
  };
}
