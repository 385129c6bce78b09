import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { RoleName } from "../db/schema.js";
import { UnauthenticatedError } from "../errors/errors.js";

/** An operator, identified by the API key it presented. */
export interface Operator {
  keyId: string;
  tenantId: string;
  role: RoleName;
  name: string;
}

/** An agent, identified by its session (later also by its mTLS client certificate). */
export interface AgentIdentity {
  agentId: string;
  tenantId: string;
  sessionId: string;
  expiresAt: Date;
}

/** The provider, identified by a system key (TenantService); not an operator of any tenant. */
export interface SystemIdentity {
  keyId: string;
  name: string;
}

/**
 * Who is calling, as resolved by the identity interceptor from the credential the call
 * presented. `anonymous` is the caller of a public RPC (Register, the handshake, health).
 */
export type Principal =
  | { readonly kind: "anonymous" }
  | { readonly kind: "operator"; readonly operator: Operator }
  | { readonly kind: "agent"; readonly agent: AgentIdentity }
  | { readonly kind: "system"; readonly system: SystemIdentity };

const ANONYMOUS: Principal = { kind: "anonymous" };

/** Set by the identity interceptor on every call; handlers read it through the helpers below. */
export const principalKey = createContextKey<Principal>(ANONYMOUS, { description: "principal" });

/** The principal of a call. */
export function principalOf(ctx: HandlerContext): Principal {
  return ctx.values.get(principalKey);
}

/** The operator of an admin call; the interceptor guarantees it for operator RPCs. */
export function operatorOf(ctx: HandlerContext): Operator {
  const principal = ctx.values.get(principalKey);
  if (principal.kind !== "operator") throw new UnauthenticatedError("missing operator identity");
  return principal.operator;
}

/** The agent of a post-handshake call; the interceptor guarantees it for agent RPCs. */
export function agentOf(ctx: HandlerContext): AgentIdentity {
  const principal = ctx.values.get(principalKey);
  if (principal.kind !== "agent") throw new UnauthenticatedError("missing session");
  return principal.agent;
}

/** The provider of a system call; the interceptor guarantees it for system RPCs. */
export function systemOf(ctx: HandlerContext): SystemIdentity {
  const principal = ctx.values.get(principalKey);
  if (principal.kind !== "system") throw new UnauthenticatedError("missing system identity");
  return principal.system;
}

/** The tenant a principal acts in, or undefined (anonymous callers and the provider act in none). */
export function tenantOfPrincipal(principal: Principal): string | undefined {
  if (principal.kind === "operator") return principal.operator.tenantId;
  if (principal.kind === "agent") return principal.agent.tenantId;
  return undefined;
}
