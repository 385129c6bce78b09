import type { Executor } from "../db/database.js";
import { PermissionDeniedError, RateLimitedError, UnauthenticatedError } from "../errors/errors.js";
import { bearerToken } from "../identity/bearer.js";
import type { AuthFailureLimit, Authenticator } from "../identity/identity-interceptor.js";
import type { Operator, SystemIdentity } from "../identity/principal.js";
import { findSystemKey } from "./system-key-store.js";

type OperatorKeys = { authenticate(secret: string): Promise<Operator | undefined> };

/**
 * The provider by `Authorization: Bearer <system key>`, for system RPCs (TenantService). A
 * tenant's operator key is refused with PERMISSION_DENIED / SYSTEM_KEY_REQUIRED (it is a valid
 * credential, just not this kind); anything else is UNAUTHENTICATED and charged to the source's
 * failed-authentication budget, as for operator keys.
 */
export function systemKeyAuthenticator(db: Executor, operatorKeys: OperatorKeys, failures?: AuthFailureLimit): Authenticator<SystemIdentity> {
  const refuse = (waitMs: number) => new RateLimitedError(`too many failed authentications from this address: retry after ${Math.ceil(waitMs / 1000)} s`, waitMs);
  return {
    async authenticate(call) {
      const secret = bearerToken(call.header);
      if (!secret) return undefined;
      const source = failures?.sourceOf(call) ?? "";
      const blockedMs = failures?.buckets.peek(source) ?? 0;
      if (blockedMs > 0) throw refuse(blockedMs);
      const key = await findSystemKey(db, secret);
      if (key) return { keyId: key.id, name: key.name };
      if (await operatorKeys.authenticate(secret)) {
        throw new PermissionDeniedError("provider RPCs need the system key; an operator key of a tenant cannot manage tenants", "SYSTEM_KEY_REQUIRED");
      }
      const waitMs = failures?.buckets.take(source) ?? 0;
      if (waitMs > 0) throw refuse(waitMs);
      throw new UnauthenticatedError("system key is not valid (unknown or revoked)");
    },
  };
}

/**
 * Operator keys, except that a system key presented to a tenant RPC is refused with
 * PERMISSION_DENIED / SYSTEM_KEY_NOT_ALLOWED: the provider is not an operator of any tenant and
 * acts on tenants only through TenantService. Costs one lookup, and only for a key that is not
 * an operator key.
 */
export function refusingSystemKeys(db: Executor, operatorKeys: OperatorKeys): OperatorKeys {
  return {
    async authenticate(secret) {
      const operator = await operatorKeys.authenticate(secret);
      if (operator) return operator;
      if (await findSystemKey(db, secret)) {
        throw new PermissionDeniedError("the system key is not an operator of any tenant: use an admin key of the tenant (CreateTenant returns its first one)", "SYSTEM_KEY_NOT_ALLOWED");
      }
      return undefined;
    },
  };
}
