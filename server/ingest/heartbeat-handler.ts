import type { ServiceImpl } from "@connectrpc/connect";
import { durationFromMs, timestampNow } from "@bufbuild/protobuf/wkt";
import type { AgentGatewayService } from "../../gen/agentgateway/v1/gateway_pb.js";
import type { AppContext } from "../app/context.js";
import { agentOf } from "../auth/session-auth.js";

/** AgentGatewayService.UploadHeartbeat: records liveness and the facts the agent reports. */
export function heartbeatHandler(app: AppContext): Pick<ServiceImpl<typeof AgentGatewayService>, "uploadHeartbeat"> {
  return {
    async uploadHeartbeat(req, ctx) {
      const agent = agentOf(ctx);
      await app.database.db
        .updateTable("agents")
        .set({
          last_seen_at: new Date(),
          ...(req.agentVersion ? { agent_version: req.agentVersion } : {}),
          ...(req.host ? { hostname: req.host.hostname, os: req.host.os, arch: req.host.arch } : {}),
        })
        .where("id", "=", agent.agentId)
        .where("tenant_id", "=", agent.tenantId)
        .execute();
      return { serverTime: timestampNow(), nextHeartbeatInterval: durationFromMs(app.config.heartbeatIntervalMs) };
    },
  };
}
