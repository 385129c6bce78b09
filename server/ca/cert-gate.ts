import type { TLSSocket } from "node:tls";
import type { AgentDenyList } from "./deny-list.js";
import { parseAgentSpiffeId } from "./spiffe.js";

/** The verified agent certificate a connection presented (kept on the socket by the gate). */
export interface AgentCertificate {
  spiffeId: string;
  tenantId: string;
  agentId: string;
  notAfter: Date;
  /** Lower-case hex SHA-256 of the certificate. */
  fingerprint: string;
}

const CERTIFICATE = Symbol("agentgateway.agentCertificate");

/** Why the gate refused connections, counted. */
export interface GateStats {
  accepted: number;
  withoutCertificate: number;
  refusedUnverified: number;
  refusedNotAnAgent: number;
  refusedDenied: number;
}

/**
 * Decides each TLS connection once its handshake is done and before any HTTP byte is read
 * (server/http/listener.ts calls it from `secureConnection`, ahead of the HTTP/2 session):
 * no certificate → accepted (Register and the handshake need no certificate; agent RPCs
 * decide later); a certificate that does not verify against the CA (another CA, expired, not
 * for clientAuth), that names no agent of this trust domain, or whose agent is on the deny
 * list → refused, and the listener destroys the socket. docs/security.md, "mTLS".
 */
export class ClientCertificateGate {
  readonly stats: GateStats = { accepted: 0, withoutCertificate: 0, refusedUnverified: 0, refusedNotAnAgent: 0, refusedDenied: 0 };

  constructor(
    private readonly trustDomain: string,
    private readonly denyList: AgentDenyList,
  ) {}

  /** True to serve the connection, false to refuse it. */
  admit(socket: TLSSocket): boolean {
    const peer = socket.getPeerCertificate();
    if (!peer || Object.keys(peer).length === 0) {
      this.stats.withoutCertificate++;
      return true;
    }
    if (!socket.authorized) {
      this.stats.refusedUnverified++;
      return false;
    }
    const uris = (peer.subjectaltname ?? "")
      .split(", ")
      .filter((n) => n.startsWith("URI:"))
      .map((n) => n.slice(4));
    const agent = uris.length === 1 && uris[0] ? parseAgentSpiffeId(this.trustDomain, uris[0]) : undefined;
    if (!agent || !uris[0]) {
      this.stats.refusedNotAnAgent++;
      return false;
    }
    if (this.denyList.has(agent.agentId)) {
      this.stats.refusedDenied++;
      return false;
    }
    const info: AgentCertificate = {
      spiffeId: uris[0],
      ...agent,
      notAfter: new Date(peer.valid_to),
      fingerprint: peer.fingerprint256.replace(/:/g, "").toLowerCase(),
    };
    (socket as unknown as Record<symbol, AgentCertificate>)[CERTIFICATE] = info;
    this.stats.accepted++;
    return true;
  }
}

/**
 * The agent certificate of the connection a call arrived on. Reads through the http2 socket
 * proxies (they forward property reads to the TLS socket), so it works for both HTTP versions.
 */
export function agentCertificateOf(socket: unknown): AgentCertificate | undefined {
  if (!socket) return undefined;
  return (socket as Record<symbol, AgentCertificate | undefined>)[CERTIFICATE];
}
