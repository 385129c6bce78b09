import type { ServiceImpl } from "@connectrpc/connect";
import type { AgentGatewayService } from "../../gen/agentgateway/v1/gateway_pb.js";
import type { AppContext } from "../app/context.js";
import { peerOf } from "../app/peer.js";
import { toProtoAgentState } from "../agents/agent-mapping.js";
import { announceAgentsUpdated } from "../agents/agent-watch.js";
import { admit } from "../ratelimit/admit.js";
import { registerAgent } from "./register.js";

/** AgentGatewayService.Register. */
export function registerHandler(app: AppContext): Pick<ServiceImpl<typeof AgentGatewayService>, "register"> {
  return {
    async register(req, ctx) {
      admit("Register", [[app.rateLimits.registerPerSource, peerOf(ctx)]]);
      const agent = await registerAgent(app.database.db, {
        enrollmentToken: req.enrollmentToken,
        identityPublicKey: req.identityPublicKey,
        name: req.name,
        host: {
          hostname: req.host?.hostname ?? "",
          os: req.host?.os ?? "",
          arch: req.host?.arch ?? "",
          agentVersion: req.host?.agentVersion ?? "",
          labels: req.host?.labels ?? {},
        },
        proofSignature: req.proofSignature,
      }, app.tenantGate);
      app.logger.info({ agentId: agent.id, tenantId: agent.tenantId, state: agent.state }, "agent registered");
      // Live views (a pending approval appearing in the console); the registration stands either way.
      await announceAgentsUpdated(app.bus, [agent.id]).catch((err) => app.logger.warn({ err }, "announcing a registration failed"));
      return { agentId: agent.id, state: toProtoAgentState(agent.state), verificationCode: agent.verificationCode, tenantId: agent.tenantId };
    },
  };
}
