import type { ServiceImpl } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type ProviderAuditService,
  type SystemKeySchema,
  type SystemKeyService,
  type TenantSchema,
  type TenantService,
  TenantState,
} from "../../gen/agentgateway/provider/v1/tenants_pb.js";
import type { AppContext } from "../app/context.js";
import { createdPageToken, decodeCreatedPageToken, pageSize } from "../admin/pagination.js";
import { NotFoundError, UnauthenticatedError } from "../errors/errors.js";
import { systemOf } from "../identity/principal.js";
import { auditEventOf } from "../audit/audit-event.js";
import { verifyProviderAuditChain } from "./provider-audit.js";
import { listProviderAuditRecords } from "./provider-audit-store.js";
import { getLiveSystemKey, type SystemKeyRecord } from "./system-key-store.js";
import { getTenantDetails, listTenantDetails, type TenantDetails } from "./tenant-store.js";

function toProto(t: TenantDetails): MessageInitShape<typeof TenantSchema> {
  return {
    id: t.id,
    name: t.name,
    createdAt: timestampFromDate(t.createdAt),
    state: t.suspendedAt ? TenantState.SUSPENDED : TenantState.ACTIVE,
    suspendedAt: t.suspendedAt ? timestampFromDate(t.suspendedAt) : undefined,
    suspendReason: t.suspendReason,
  };
}

/** agentgateway.provider.v1.TenantService: only the system key reaches it (declared in the protos). */
export function tenantService(app: AppContext): ServiceImpl<typeof TenantService> {
  const db = app.database.db;
  const tenants = app.tenants;
  return {
    async createTenant(req, ctx) {
      const created = await tenants.create(systemOf(ctx), { name: req.name, adminKeyName: req.adminKeyName || "bootstrap admin" });
      app.logger.info({ tenantId: created.tenant.id, name: created.tenant.name }, "tenant created");
      return { tenant: toProto(created.tenant), adminKeyId: created.adminKeyId, adminKeySecret: created.adminKeySecret };
    },
    async listTenants(req) {
      const limit = pageSize(req.pageSize, 100, 1000);
      const after = decodeCreatedPageToken(req.pageToken);
      const rows = await listTenantDetails(db, { limit, ...(after ? { after } : {}) });
      const last = rows.at(-1);
      return { tenants: rows.map(toProto), nextPageToken: rows.length === limit && last ? createdPageToken(last) : "" };
    },
    async getTenant(req) {
      const tenant = await getTenantDetails(db, req.id.toLowerCase());
      if (!tenant) throw new NotFoundError(`no tenant ${req.id}`);
      const usage = await tenants.usage(db, tenant);
      return {
        tenant: toProto(tenant),
        usage: { agents: BigInt(usage.agents), activeApiKeys: BigInt(usage.activeApiKeys), rollouts: BigInt(usage.rollouts), auditRecords: BigInt(usage.auditRecords) },
      };
    },
    async suspendTenant(req, ctx) {
      const tenant = await tenants.suspend(systemOf(ctx), req.id.toLowerCase(), req.reason);
      app.logger.info({ tenantId: tenant.id }, "tenant suspended");
      return { tenant: toProto(tenant) };
    },
    async resumeTenant(req, ctx) {
      const tenant = await tenants.resume(systemOf(ctx), req.id.toLowerCase());
      app.logger.info({ tenantId: tenant.id }, "tenant resumed");
      return { tenant: toProto(tenant) };
    },
    async deleteTenant(req, ctx) {
      await tenants.delete(systemOf(ctx), req.id.toLowerCase());
      app.logger.info({ tenantId: req.id }, "tenant deleted");
      return {};
    },
  };
}

/** agentgateway.provider.v1.ProviderAuditService. */
export function providerAuditService(app: AppContext): ServiceImpl<typeof ProviderAuditService> {
  const db = app.database.db;
  return {
    async listProviderAuditEvents(req) {
      const limit = pageSize(req.pageSize, 100, 1000);
      const rows = await listProviderAuditRecords(db, Number(req.afterSeq), limit);
      const last = rows.at(-1);
      return {
        events: rows.map((r) => auditEventOf(r, "")),
        nextAfterSeq: rows.length === limit && last ? BigInt(last.seq) : 0n,
      };
    },
    async verifyProviderAuditChain() {
      const result = await verifyProviderAuditChain(db);
      return { ok: result.ok, checked: BigInt(result.checked), firstBadSeq: BigInt(result.firstBadSeq), message: result.message };
    },
  };
}

function systemKeyToProto(k: SystemKeyRecord): MessageInitShape<typeof SystemKeySchema> {
  return { id: k.id, name: k.name, displayPrefix: k.displayPrefix, createdAt: timestampFromDate(k.createdAt) };
}

/** agentgateway.provider.v1.SystemKeyService: the calling system key, and its rotation. */
export function systemKeyService(app: AppContext): ServiceImpl<typeof SystemKeyService> {
  const db = app.database.db;
  return {
    async whoAmI(_req, ctx) {
      const key = await getLiveSystemKey(db, systemOf(ctx).keyId);
      if (!key) throw new UnauthenticatedError("system key is not valid (unknown or revoked)");
      return { key: systemKeyToProto(key) };
    },
    async rotateSystemKey(req, ctx) {
      const rotated = await app.systemKeys.rotate(systemOf(ctx), { name: req.name });
      // Ids and fingerprints only: the secret is in the response and nowhere else.
      app.logger.info({ keyId: rotated.key.id, fingerprint: rotated.key.displayPrefix, revokedKeyId: rotated.revoked.id }, "system key rotated");
      return { key: systemKeyToProto(rotated.key), secret: rotated.secret, revokedKeyId: rotated.revoked.id };
    },
  };
}
