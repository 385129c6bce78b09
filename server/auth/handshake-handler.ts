import type { ServiceImpl } from "@connectrpc/connect";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { AgentGatewayService } from "../../gen/agentgateway/v1/gateway_pb.js";
import type { AppContext } from "../app/context.js";
import { peerOf } from "../app/peer.js";
import { admit } from "../ratelimit/admit.js";
import { beginHandshake, completeHandshake } from "./handshake.js";

/** AgentGatewayService.BeginAuthHandshake and CompleteAuthHandshake. */
export function handshakeHandlers(
  app: AppContext,
): Pick<ServiceImpl<typeof AgentGatewayService>, "beginAuthHandshake" | "completeAuthHandshake"> {
  const limits = app.rateLimits;
  return {
    async beginAuthHandshake(req, ctx) {
      admit("handshake", [
        [limits.handshakePerSource, peerOf(ctx)],
        [limits.handshakePerAgent, req.agentId.toLowerCase()],
      ]);
      const challenge = await beginHandshake(app.database.db, {
        // UUIDs are compared and signed in their canonical lowercase form (docs/protocol.md).
        agentId: req.agentId.toLowerCase(),
        identityPublicKey: req.identityPublicKey,
        ttlMs: app.config.challengeTtlMs,
      });
      return { challengeId: challenge.challengeId, nonce: challenge.nonce, expiresAt: timestampFromDate(challenge.expiresAt) };
    },
    async completeAuthHandshake(req, ctx) {
      admit("handshake", [
        [limits.handshakePerSource, peerOf(ctx)],
        [limits.handshakePerAgent, req.agentId.toLowerCase()],
      ]);
      const session = await completeHandshake(app.database.db, {
        challengeId: req.challengeId.toLowerCase(),
        agentId: req.agentId.toLowerCase(),
        signature: req.signature,
        sessionTtlMs: app.config.sessionTtlMs,
      });
      // Other replicas may hold the previous session in cache or a stream opened with it.
      await app.bus.publish("session_changed", session.agentId);
      return {
        sessionToken: session.token,
        expiresAt: timestampFromDate(session.expiresAt),
        heartbeatInterval: durationFromMs(app.config.heartbeatIntervalMs),
      };
    },
  };
}
