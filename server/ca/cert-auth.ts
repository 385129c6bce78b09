import { createContextKey } from "@connectrpc/connect";
import { PermissionDeniedError, UnauthenticatedError } from "../errors/errors.js";
import type { Authenticator } from "../identity/identity-interceptor.js";
import type { AgentIdentity } from "../identity/principal.js";
import type { AgentCertificate } from "./cert-gate.js";

/** How agents authenticate (AGW_AGENT_AUTH). */
export type AgentAuthMode = "session" | "mtls" | "both";

/** The verified agent certificate of the call's connection (set from the socket by app/peer.ts). */
export const agentCertificateKey = createContextKey<AgentCertificate | undefined>(undefined, { description: "agent client certificate" });

/** The one agent RPC callable without a certificate in mtls mode: how the first one is obtained. */
const CERTIFICATE_FREE = new Set(["IssueAgentCertificate"]);

/**
 * Wraps the session authenticator for mTLS (docs/security.md, "mTLS"). The session still names
 * the agent; the certificate must agree with it. `mtls`: agent RPCs need a certificate of the
 * session's agent (except IssueAgentCertificate); `both`: a certificate is optional, but one
 * that is presented must be the session's agent's; `session`: certificates are not looked at.
 */
export function certificateBoundSessions(sessions: Authenticator<AgentIdentity>, mode: AgentAuthMode): Authenticator<AgentIdentity> {
  if (mode === "session") return sessions;
  return {
    async authenticate(call) {
      const identity = await sessions.authenticate(call);
      if (!identity) return undefined;
      const cert = call.contextValues.get(agentCertificateKey);
      if (!cert) {
        if (mode === "mtls" && !CERTIFICATE_FREE.has(call.method?.name ?? "")) {
          throw new UnauthenticatedError(
            "this gateway requires a client certificate for agent RPCs (AGW_AGENT_AUTH=mtls): get one with IssueAgentCertificate and reconnect with it",
            "CLIENT_CERTIFICATE_REQUIRED",
          );
        }
        return identity;
      }
      if (cert.notAfter.getTime() <= Date.now()) {
        throw new UnauthenticatedError("the connection's client certificate has expired: reconnect without it and renew", "CLIENT_CERTIFICATE_REQUIRED");
      }
      if (cert.agentId !== identity.agentId || cert.tenantId !== identity.tenantId) {
        throw new PermissionDeniedError(`the client certificate (${cert.spiffeId}) is not the session's agent's`, "CERTIFICATE_MISMATCH");
      }
      return identity;
    },
  };
}
