import type { ServiceImpl } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type ApiKeySchema, type ApiKeyService, Role } from "../../gen/agentgateway/admin/v1/api_keys_pb.js";
import type { AppContext } from "../app/context.js";
import { appendAudit } from "../audit/audit-log.js";
import type { RoleName } from "../db/schema.js";
import { FailedPreconditionError, NotFoundError } from "../errors/errors.js";
import type { ApiKeyRecord } from "./api-key-store.js";
import { operatorOf } from "../identity/principal.js";

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
      const { key, secret } = await db.transaction().execute(async (trx) => {
        const created = await app.apiKeys.create(trx, { tenantId: operator.tenantId, name: req.name, role, createdBy: operator.keyId });
        await appendAudit(trx, {
          tenantId: operator.tenantId,
          actor: { kind: "operator", keyId: operator.keyId },
          action: "api_key.created",
          target: `api_key:${created.key.id}`,
          data: { name: req.name, role },
        });
        return created;
      });
      return { key: toProto(key), secret };
    },

    async listApiKeys(req, ctx) {
      const operator = operatorOf(ctx);
      const keys = await app.apiKeys.list(operator.tenantId, req.includeRevoked);
      return { keys: keys.map(toProto) };
    },

    async revokeApiKey(req, ctx) {
      const operator = operatorOf(ctx);
      if (req.id === operator.keyId) throw new FailedPreconditionError("a key cannot revoke itself; use another admin key");
      const key = await db.transaction().execute(async (trx) => {
        const before = await app.apiKeys.get(trx, operator.tenantId, req.id);
        if (!before) throw new NotFoundError(`no API key ${req.id}`);
        const after = await app.apiKeys.revoke(trx, operator.tenantId, req.id);
        if (!before.revokedAt) {
          await appendAudit(trx, { tenantId: operator.tenantId, actor: { kind: "operator", keyId: operator.keyId }, action: "api_key.revoked", target: `api_key:${req.id}` });
        }
        return after ?? before;
      });
      return { key: toProto(key) };
    },

    async whoAmI(_req, ctx) {
      const operator = operatorOf(ctx);
      const [key, tenant] = await Promise.all([
        app.apiKeys.get(db, operator.tenantId, operator.keyId),
        db.selectFrom("tenants").select(["name"]).where("id", "=", operator.tenantId).executeTakeFirst(),
      ]);
      return { key: key ? toProto(key) : undefined, tenantId: operator.tenantId, tenantName: tenant?.name ?? "" };
    },
  };
}
