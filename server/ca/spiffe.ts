/**
 * SPIFFE ids of agents (docs/security.md, "mTLS"):
 * spiffe://<trust-domain>/tenant/<tenant id>/agent/<agent id>.
 */

/** The SPIFFE id the CA puts in an agent's certificate. */
export function spiffeIdOf(trustDomain: string, tenantId: string, agentId: string): string {
  return `spiffe://${trustDomain}/tenant/${tenantId}/agent/${agentId}`;
}

const UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
const AGENT_PATH = new RegExp(`^/tenant/(${UUID})/agent/(${UUID})$`);

/** The tenant and agent of a SPIFFE id in the trust domain, or undefined for anything else. */
export function parseAgentSpiffeId(trustDomain: string, uri: string): { tenantId: string; agentId: string } | undefined {
  const prefix = `spiffe://${trustDomain}`;
  if (!uri.startsWith(prefix)) return undefined;
  const match = AGENT_PATH.exec(uri.slice(prefix.length));
  return match?.[1] && match[2] ? { tenantId: match[1], agentId: match[2] } : undefined;
}

/** Whether a trust domain is acceptable: lowercase letters, digits, dots, dashes, underscores (SPIFFE ID §2.1). */
export function isTrustDomain(value: string): boolean {
  return /^[a-z0-9._-]{1,255}$/.test(value);
}
