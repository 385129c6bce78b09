import type { ServiceImpl } from "@connectrpc/connect";
import { type AgentService, Liveness } from "../../gen/agentgateway/admin/v1/agents_pb.js";
import type { AppContext } from "../app/context.js";
import { decodeIdPageToken, idPageToken, pageSize } from "../admin/pagination.js";
import type { AgentStateName } from "../db/schema.js";
import { NotFoundError } from "../errors/errors.js";
import { operatorOf } from "../identity/principal.js";
import { transitionAgent } from "./agent-admin.js";
import { fromProtoAgentState, toProtoAgent } from "./agent-mapping.js";
import { type AgentFilter, getAgent, listAgents } from "./agent-store.js";

/** agentgateway.admin.v1.AgentService; ListAgentEvents/ListAgentTelemetry are in server/ingest/ingest-admin-handler.ts. */
export function agentService(app: AppContext): Partial<ServiceImpl<typeof AgentService>> {
  const db = app.database.db;
  const thresholds = { staleAfterMs: app.config.staleAfterMs, offlineAfterMs: app.config.offlineAfterMs };
  const show = (agent: Parameters<typeof toProtoAgent>[0]) => ({ agent: toProtoAgent(agent, thresholds) });
  return {
    async listAgents(req, ctx) {
      const operator = operatorOf(ctx);
      const limit = pageSize(req.pageSize, 100, 1000);
      const now = Date.now();
      const staleAt = new Date(now - thresholds.staleAfterMs);
      const offlineAt = new Date(now - thresholds.offlineAfterMs);
      const lastSeen: AgentFilter["lastSeen"] =
        req.liveness === Liveness.ONLINE ? { after: staleAt }
        : req.liveness === Liveness.STALE ? { after: offlineAt, notAfter: staleAt }
        : req.liveness === Liveness.OFFLINE ? { notAfter: offlineAt, never: true }
        : undefined;
      const afterId = decodeIdPageToken(req.pageToken);
      const agents = await listAgents(db, {
        tenantId: operator.tenantId,
        states: req.states.map(fromProtoAgentState).filter((s): s is AgentStateName => s !== undefined),
        labels: req.labelSelector,
        hostLabels: req.hostLabelSelector,
        namePrefix: req.namePrefix,
        limit,
        ...(lastSeen ? { lastSeen } : {}),
        ...(afterId ? { afterId } : {}),
      });
      const last = agents.at(-1);
      return {
        agents: agents.map((a) => toProtoAgent(a, thresholds)),
        nextPageToken: agents.length === limit && last ? idPageToken(last.id) : "",
      };
    },
    async getAgent(req, ctx) {
      const agent = await getAgent(db, operatorOf(ctx).tenantId, req.id);
      if (!agent) throw new NotFoundError(`no agent ${req.id}`);
      return show(agent);
    },
    async approveAgent(req, ctx) {
      return show(await transitionAgent(db, app.bus, operatorOf(ctx), req.id, { kind: "approve", expectedVerificationCode: req.expectedVerificationCode }));
    },
    async rejectAgent(req, ctx) {
      return show(await transitionAgent(db, app.bus, operatorOf(ctx), req.id, { kind: "reject", reason: req.reason }));
    },
    async revokeAgent(req, ctx) {
      return show(await transitionAgent(db, app.bus, operatorOf(ctx), req.id, { kind: "revoke", reason: req.reason }));
    },
    async unrevokeAgent(req, ctx) {
      return show(await transitionAgent(db, app.bus, operatorOf(ctx), req.id, { kind: "unrevoke", note: req.note }));
    },
    async retireAgent(req, ctx) {
      return show(await transitionAgent(db, app.bus, operatorOf(ctx), req.id, { kind: "retire", reason: req.reason }));
    },
  };
}

