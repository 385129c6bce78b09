import type { ServiceImpl } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type ApiKeySchema, type ApiKeyService, Role } from "../../gen/agentgateway/admin/v1/api_keys_pb.js";
import type { AppContext } from "../app/context.js";
import type { RoleName } from "../db/schema.js";
import type { ApiKeyRecord } from "./api-key-store.js";
import { createOperatorKey, revokeOperatorKey } from "./api-key-service.js";
import { operatorOf } from "../identity/principal.js";
import { getTenantName } from "../tenancy/tenant-store.js";

const ROLE_TO_PROTO: Record<RoleName, Role> = { viewer: Role.VIEWER, editor: Role.EDITOR, admin: Role.ADMIN };
const ROLE_FROM_PROTO = new Map<Role, RoleName>([[Role.VIEWER, "viewer"], [Role.EDITOR, "editor"], [Role.ADMIN, "admin"]]);

function toProto(key: ApiKeyRecord): MessageInitShape<typeof ApiKeySchema> {
  return {
    id: key.id,
    name: key.name,
    role: ROLE_TO_PROTO[key.role],
    displayPrefix: key.displayPrefix,
    createdAt: timestampFromDate(key.createdAt),
    revokedAt: key.revokedAt ? timestampFromDate(key.revokedAt) : undefined,
    lastUsedAt: key.lastUsedAt ? timestampFromDate(key.lastUsedAt) : undefined,
  };
}

/** agentgateway.admin.v1.ApiKeyService. */
export function apiKeyService(app: AppContext): ServiceImpl<typeof ApiKeyService> {
  const db = app.database.db;
  return {
    async createApiKey(req, ctx) {
      const operator = operatorOf(ctx);
      const role = ROLE_FROM_PROTO.get(req.role) ?? "viewer"; // validation rejects UNSPECIFIED before this
      const { key, secret } = await createOperatorKey(db, app.apiKeys, operator, { name: req.name, role });
      return { key: toProto(key), secret };
    },

    async listApiKeys(req, ctx) {
      const operator = operatorOf(ctx);
      const keys = await app.apiKeys.list(operator.tenantId, req.includeRevoked);
      return { keys: keys.map(toProto) };
    },

    async revokeApiKey(req, ctx) {
      const operator = operatorOf(ctx);
      const key = await revokeOperatorKey(db, app.apiKeys, operator, req.id);
      return { key: toProto(key) };
    },

    async whoAmI(_req, ctx) {
      const operator = operatorOf(ctx);
      const [key, tenantName] = await Promise.all([
        app.apiKeys.get(db, operator.tenantId, operator.keyId),
        getTenantName(db, operator.tenantId),
      ]);
      return { key: key ? toProto(key) : undefined, tenantId: operator.tenantId, tenantName: tenantName ?? "" };
    },
  };
}
