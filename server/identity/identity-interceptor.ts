import type { DescMethod } from "@bufbuild/protobuf";
import type { ContextValues, Interceptor } from "@connectrpc/connect";
import { PermissionDeniedError, RateLimitedError, UnauthenticatedError } from "../errors/errors.js";
import type { TokenBuckets } from "../ratelimit/token-bucket.js";
import { type AccessPolicy, methodName, roleAllows } from "./access-policy.js";
import { bearerToken } from "./bearer.js";
import { type AgentIdentity, type Operator, principalKey, type SystemIdentity } from "./principal.js";

/** The principal of a call made by an agent. */
type AgentPrincipal = { kind: "agent"; agent: AgentIdentity };

/** What an authenticator may look at: the request headers and the connection's context values (peer, TLS). */
export interface CallCredentials {
  readonly header: Headers;
  readonly contextValues: ContextValues;
  /** The method called (an authenticator may treat one RPC differently, e.g. the certificate-free IssueAgentCertificate). */
  readonly method?: DescMethod;
}

/**
 * Turns one kind of credential into an identity. Returns undefined when the call carries no
 * credential of this kind (so the next authenticator may try); throws a domain error when it
 * carries one that is not acceptable. This is the extension point for new credentials, e.g. an
 * mTLS client certificate read from the context values, listed before the session.
 */
export interface Authenticator<Identity> {
  authenticate(call: CallCredentials): Promise<Identity | undefined>;
}

/** The authenticators per caller kind, tried in order; the first that recognises a credential decides. */
export interface IdentitySources {
  operators: readonly Authenticator<Operator>[];
  agents: readonly Authenticator<AgentIdentity>[];
  /** The provider's system keys (TenantService); none means no system RPC can be called. */
  system?: readonly Authenticator<SystemIdentity>[];
}

/** Bounds failed operator authentications per source address, so keys cannot be guessed at speed. */
export interface AuthFailureLimit {
  buckets: TokenBuckets;
  sourceOf(call: CallCredentials): string;
}

/**
 * Operators by `Authorization: Bearer <API key>`. A source whose failed attempts used up its
 * budget is refused with RESOURCE_EXHAUSTED before any lookup — also with a valid key, until
 * the budget refills — so a stranger cannot guess keys at speed; other sources are unaffected.
 */
export function apiKeyAuthenticator(keys: { authenticate(secret: string): Promise<Operator | undefined> }, failures?: AuthFailureLimit): Authenticator<Operator> {
  const refuse = (waitMs: number) =>
    new RateLimitedError(`too many failed authentications from this address: retry after ${Math.ceil(waitMs / 1000)} s`, waitMs, failures?.buckets.name);
  return {
    async authenticate(call) {
      const secret = bearerToken(call.header);
      if (!secret) return undefined;
      const source = failures?.sourceOf(call) ?? "";
      const blockedMs = failures?.buckets.peek(source) ?? 0;
      if (blockedMs > 0) throw refuse(blockedMs);
      const operator = await keys.authenticate(secret);
      if (!operator) {
        const waitMs = failures?.buckets.take(source) ?? 0;
        if (waitMs > 0) throw refuse(waitMs);
        throw new UnauthenticatedError("operator API key is not valid (unknown or revoked)");
      }
      return operator;
    },
  };
}

/** Agents by `Authorization: Bearer <session token>`; the resolver throws on a bad session. */
export function sessionAuthenticator(sessions: { resolve(token: string): Promise<AgentIdentity> }): Authenticator<AgentIdentity> {
  return {
    async authenticate(call) {
      const token = bearerToken(call.header);
      return token === undefined ? undefined : sessions.resolve(token);
    },
  };
}

/**
 * The calling agent by its credential, recorded as the call's principal; UNAUTHENTICATED when it
 * carries none. What the interceptor does for CALLER_AGENT methods, and what the wire paths do.
 */
export async function authenticateAgent(authenticators: readonly Authenticator<AgentIdentity>[], call: CallCredentials): Promise<AgentPrincipal> {
  const agent = await firstIdentity(authenticators, call);
  if (!agent) throw new UnauthenticatedError("missing or malformed session token: send Authorization: Bearer <session token>");
  const principal: AgentPrincipal = { kind: "agent", agent };
  call.contextValues.set(principalKey, principal);
  return principal;
}

export async function firstIdentity<Identity>(authenticators: readonly Authenticator<Identity>[], call: CallCredentials): Promise<Identity | undefined> {
  for (const authenticator of authenticators) {
    const identity = await authenticator.authenticate(call);
    if (identity !== undefined) return identity;
  }
  return undefined;
}

/**
 * The one place that decides who is calling and whether they may: looks up the method's
 * declared access by descriptor, resolves the caller into a Principal in the context values,
 * and enforces the operator role. Missing or invalid credential → UNAUTHENTICATED; too weak a
 * role → PERMISSION_DENIED. Runs before validation, so an unauthenticated caller learns
 * nothing about the request shape.
 */
export function identityInterceptor(policy: AccessPolicy, sources: IdentitySources): Interceptor {
  return (next) => async (req) => {
    const access = policy.get(req.method);
    // Unreachable once start-up checked the routes against the policy; fail closed regardless.
    if (!access) throw new PermissionDeniedError(`${methodName(req.method)} declares no access`);
    switch (access.caller) {
      case "public":
        return next(req);
      case "agent":
        await authenticateAgent(sources.agents, req);
        return next(req);
      case "operator": {
        const operator = await firstIdentity(sources.operators, req);
        if (!operator) throw new UnauthenticatedError("missing operator API key: send Authorization: Bearer <key>");
        if (!roleAllows(operator.role, access.role)) {
          throw new PermissionDeniedError(`${methodName(req.method)} needs role ${access.role}; this key has role ${operator.role}`);
        }
        req.contextValues.set(principalKey, { kind: "operator", operator });
        return next(req);
      }
      case "system": {
        const system = await firstIdentity(sources.system ?? [], req);
        if (!system) throw new UnauthenticatedError("missing system key: send Authorization: Bearer <system key>");
        req.contextValues.set(principalKey, { kind: "system", system });
        return next(req);
      }
    }
  };
}
