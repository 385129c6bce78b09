import type { ServiceImpl } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ReleaseKeyService } from "../../gen/agentgateway/admin/v1/release_keys_pb.js";
import type { AppContext } from "../app/context.js";
import { operatorOf } from "../identity/principal.js";
import { listReleaseKeys, type ReleaseKeyRecord } from "./release-key-store.js";
import { registerReleaseKey, revokeTenantReleaseKey } from "./release-key-service.js";

function toProto(key: ReleaseKeyRecord) {
  return {
    id: key.id,
    name: key.name,
    publicKey: key.publicKey,
    createdAt: timestampFromDate(key.createdAt),
    revokedAt: key.revokedAt ? timestampFromDate(key.revokedAt) : undefined,
  };
}

/** agentgateway.admin.v1.ReleaseKeyService. */
export function releaseKeyService(app: AppContext): ServiceImpl<typeof ReleaseKeyService> {
  const db = app.database.db;
  return {
    async registerReleaseKey(req, ctx) {
      return { key: toProto(await registerReleaseKey(db, operatorOf(ctx), { name: req.name, publicKey: req.publicKey })) };
    },
    async listReleaseKeys(req, ctx) {
      const keys = await listReleaseKeys(db, operatorOf(ctx).tenantId, req.includeRevoked);
      return { keys: keys.map(toProto) };
    },
    async revokeReleaseKey(req, ctx) {
      return { key: toProto(await revokeTenantReleaseKey(db, operatorOf(ctx), req.id)) };
    },
  };
}
