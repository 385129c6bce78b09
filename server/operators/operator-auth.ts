import { createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import type { RoleName } from "../db/schema.js";
import { PermissionDeniedError, UnauthenticatedError } from "../errors/errors.js";
import { bearerToken } from "../auth/bearer.js";
import type { ApiKeyStore } from "./api-key-store.js";

/** The authenticated operator of an admin call. */
export interface Operator {
  keyId: string;
  tenantId: string;
  role: RoleName;
  name: string;
}

/** Set by the operator interceptor on every admin call; handlers read it with `operatorOf`. */
export const operatorKey = createContextKey<Operator | undefined>(undefined, { description: "operator" });

const RANK: Record<RoleName, number> = { viewer: 1, editor: 2, admin: 3 };

/**
 * The minimal role of every admin method, by "package.Service/Method". A method missing here
 * needs admin, so a newly added RPC is closed until someone decides who may call it.
 */
export const REQUIRED_ROLE: Record<string, RoleName> = {
  "agentgateway.admin.v1.EnrollmentTokenService/CreateEnrollmentToken": "editor",
  "agentgateway.admin.v1.EnrollmentTokenService/ListEnrollmentTokens": "viewer",
  "agentgateway.admin.v1.EnrollmentTokenService/RevokeEnrollmentToken": "editor",
  "agentgateway.admin.v1.ApiKeyService/CreateApiKey": "admin",
  "agentgateway.admin.v1.ApiKeyService/ListApiKeys": "admin",
  "agentgateway.admin.v1.ApiKeyService/RevokeApiKey": "admin",
  "agentgateway.admin.v1.ApiKeyService/WhoAmI": "viewer",
  "agentgateway.admin.v1.AgentService/ListAgents": "viewer",
  "agentgateway.admin.v1.AgentService/GetAgent": "viewer",
  "agentgateway.admin.v1.AgentService/ApproveAgent": "editor",
  "agentgateway.admin.v1.AgentService/RejectAgent": "editor",
  "agentgateway.admin.v1.AgentService/RevokeAgent": "editor",
  "agentgateway.admin.v1.AgentService/UnrevokeAgent": "editor",
  "agentgateway.admin.v1.AgentService/RetireAgent": "editor",
  "agentgateway.admin.v1.AgentService/ListAgentEvents": "viewer",
  "agentgateway.admin.v1.AgentService/ListAgentTelemetry": "viewer",
  "agentgateway.admin.v1.AgentService/WatchAgents": "viewer",
  "agentgateway.admin.v1.ReleaseKeyService/RegisterReleaseKey": "admin",
  "agentgateway.admin.v1.ReleaseKeyService/ListReleaseKeys": "viewer",
  "agentgateway.admin.v1.ReleaseKeyService/RevokeReleaseKey": "admin",
  "agentgateway.admin.v1.RolloutService/PlanRollout": "viewer",
  "agentgateway.admin.v1.RolloutService/GetRollout": "viewer",
  "agentgateway.admin.v1.RolloutService/ListRollouts": "viewer",
  "agentgateway.admin.v1.RolloutService/WatchRollout": "viewer",
  "agentgateway.admin.v1.RolloutService/CreateRollout": "editor",
  "agentgateway.admin.v1.RolloutService/StartRollout": "editor",
  "agentgateway.admin.v1.RolloutService/AdvanceRollout": "editor",
  "agentgateway.admin.v1.RolloutService/HaltRollout": "editor",
  "agentgateway.admin.v1.RolloutService/ResumeRollout": "editor",
  "agentgateway.admin.v1.RolloutService/CancelRollout": "editor",
  "agentgateway.admin.v1.RolloutService/RetryFailedMembers": "editor",
  "agentgateway.admin.v1.AuditService/ListAuditEvents": "admin",
  "agentgateway.admin.v1.AuditService/VerifyAuditChain": "admin",
};

/** Whether a call belongs to the operator API (and so needs an API key). */
export function isAdminService(typeName: string): boolean {
  return typeName.startsWith("agentgateway.admin.");
}

/**
 * Authenticates admin calls by `Authorization: Bearer <API key>` and enforces the role table.
 * Missing, unknown or revoked key → UNAUTHENTICATED; too weak a role → PERMISSION_DENIED.
 */
export function operatorAuthInterceptor(keys: ApiKeyStore): Interceptor {
  return (next) => async (req) => {
    if (!isAdminService(req.service.typeName)) return next(req);
    const secret = bearerToken(req.header);
    if (!secret) throw new UnauthenticatedError("missing operator API key: send Authorization: Bearer <key>");
    const operator = await keys.authenticate(secret);
    if (!operator) throw new UnauthenticatedError("operator API key is not valid (unknown or revoked)");
    const method = `${req.service.typeName}/${req.method.name}`;
    const required = REQUIRED_ROLE[method] ?? "admin";
    if (RANK[operator.role] < RANK[required]) {
      throw new PermissionDeniedError(`${method} needs role ${required}; this key has role ${operator.role}`);
    }
    req.contextValues.set(operatorKey, operator);
    return next(req);
  };
}

/** The operator of an admin call; the interceptor guarantees it is set. */
export function operatorOf(ctx: HandlerContext): Operator {
  const operator = ctx.values.get(operatorKey);
  if (!operator) throw new UnauthenticatedError("missing operator identity");
  return operator;
}
