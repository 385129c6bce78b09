import type { ServiceImpl } from "@connectrpc/connect";
import { durationFromMs, timestampNow } from "@bufbuild/protobuf/wkt";
import type { AgentGatewayService } from "../../gen/agentgateway/v1/gateway_pb.js";
import type { AppContext } from "../app/context.js";
import { agentOf } from "../identity/principal.js";
import { AgentStatus } from "../../gen/agentgateway/v1/ingest_pb.js";
import type { ReportedStatusName } from "../db/schema.js";
import { RateLimitedError } from "../errors/errors.js";

const STATUS: Partial<Record<AgentStatus, ReportedStatusName>> = {
  [AgentStatus.HEALTHY]: "HEALTHY",
  [AgentStatus.DEGRADED]: "DEGRADED",
  [AgentStatus.UNHEALTHY]: "UNHEALTHY",
};

/**
 * AgentGatewayService.UploadHeartbeat: records liveness and the facts the agent reports. No
 * database write per call: the report goes to the coalescer (app.heartbeats), which writes all
 * agents' latest reports in one statement per flush interval.
 */
export function heartbeatHandler(app: AppContext): Pick<ServiceImpl<typeof AgentGatewayService>, "uploadHeartbeat"> {
  const interval = durationFromMs(app.config.heartbeatIntervalMs);
  return {
    async uploadHeartbeat(req, ctx) {
      const agent = agentOf(ctx);
      const version = req.agentVersion || req.host?.agentVersion || "";
      const accepted = app.heartbeats.record(agent.agentId, {
        tenantId: agent.tenantId,
        seenAt: new Date(),
        agentVersion: version ? version : undefined,
        host: req.host ? { hostname: req.host.hostname, os: req.host.os, arch: req.host.arch } : undefined,
        status: STATUS[req.status],
        uptimeSeconds: req.uptime ? Number(req.uptime.seconds) : undefined,
      });
      // The buffer is full (the database has been unreachable for a while): say so, with a hint.
      if (!accepted) throw new RateLimitedError("heartbeat buffer full: retry later", app.config.heartbeatFlushIntervalMs * 5, "heartbeat_buffer");
      return { serverTime: timestampNow(), nextHeartbeatInterval: interval };
    },
  };
}
