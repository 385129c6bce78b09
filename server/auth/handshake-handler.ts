import type { ServiceImpl } from "@connectrpc/connect";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { AgentGatewayService } from "../../gen/agentgateway/v1/gateway_pb.js";
import type { AppContext } from "../app/context.js";
import { peerOf } from "../app/peer.js";
import { admit } from "../ratelimit/admit.js";

/** AgentGatewayService.BeginAuthHandshake and CompleteAuthHandshake. */
export function handshakeHandlers(
  app: AppContext,
): Pick<ServiceImpl<typeof AgentGatewayService>, "beginAuthHandshake" | "completeAuthHandshake"> {
  const limits = app.rateLimits;
  return {
    async beginAuthHandshake(req, ctx) {
      admit("handshake", [[limits.handshakePerSource, peerOf(ctx)]]);
      // UUIDs are compared and signed in their canonical lowercase form (docs/protocol.md).
      const agentId = req.agentId.toLowerCase();
      // Shed before any database work when too many handshakes are in flight (reconnect storm).
      const challenge = await app.control.admission.handshakes.run(() =>
        app.handshakes.begin({ agentId, identityPublicKey: req.identityPublicKey, ttlMs: app.config.challengeTtlMs }),
      );
      // Charged only now that the presented key matched the agent's: a stranger who knows an
      // agent id spends their own source budget, never the agent's. The challenge just minted
      // (nothing was stored) is never handed out when the agent is over its budget.
      admit("handshake", [[limits.handshakePerAgent, agentId]]);
      return { challengeId: challenge.challengeId, nonce: challenge.nonce, expiresAt: timestampFromDate(challenge.expiresAt) };
    },
    async completeAuthHandshake(req, ctx) {
      // Each Complete that gets to the database answers a challenge a charged Begin minted for
      // this agent (forged ids are refused before), so the per-agent budget already bounds it;
      // only the source pays here.
      admit("handshake", [[limits.handshakePerSource, peerOf(ctx)]]);
      // A suspended tenant's agent is refused (TENANT_SUSPENDED) before any session row is written.
      const session = await app.control.admission.handshakes.run(() =>
        app.handshakes.complete({
          challengeId: req.challengeId.toLowerCase(),
          agentId: req.agentId.toLowerCase(),
          signature: req.signature,
          sessionTtlMs: app.config.sessionTtlMs,
        }),
      );
      // A replaced session was announced (session_changed) by the service, in the same statement.
      return {
        sessionToken: session.token,
        expiresAt: timestampFromDate(session.expiresAt),
        heartbeatInterval: durationFromMs(app.config.heartbeatIntervalMs),
      };
    },
  };
}
