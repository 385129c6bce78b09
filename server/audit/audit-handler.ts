import type { ServiceImpl } from "@connectrpc/connect";
import type { JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { AuditService } from "../../gen/agentgateway/admin/v1/audit_pb.js";
import type { AppContext } from "../app/context.js";
import { pageSize } from "../admin/pagination.js";
import { operatorOf } from "../identity/principal.js";
import { listAuditRecords } from "./audit-store.js";
import { verifyAuditChain } from "./verify.js";

/** agentgateway.admin.v1.AuditService. */
export function auditService(app: AppContext): ServiceImpl<typeof AuditService> {
  const db = app.database.db;
  return {
    async listAuditEvents(req, ctx) {
      const operator = operatorOf(ctx);
      const limit = pageSize(req.pageSize, 100, 1000);
      const rows = await listAuditRecords(db, { tenantId: operator.tenantId, afterSeq: Number(req.afterSeq), action: req.action, target: req.target, limit });
      const last = rows.at(-1);
      return {
        events: rows.map((r) => ({
          seq: BigInt(r.seq),
          tenantId: r.tenantId,
          actor: r.actor,
          action: r.action,
          target: r.target,
          data: r.data as JsonObject,
          createdAt: timestampFromDate(r.createdAt),
          prevHash: r.prevHash,
          hash: r.hash,
        })),
        nextAfterSeq: rows.length === limit && last ? BigInt(last.seq) : 0n,
      };
    },
    async verifyAuditChain(_req, ctx) {
      const result = await verifyAuditChain(db, operatorOf(ctx).tenantId);
      return { ok: result.ok, checked: BigInt(result.checked), firstBadSeq: BigInt(result.firstBadSeq), message: result.message };
    },
  };
}
