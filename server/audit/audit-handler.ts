import type { ServiceImpl } from "@connectrpc/connect";
import type { AuditService } from "../../gen/agentgateway/admin/v1/audit_pb.js";
import type { AppContext } from "../app/context.js";
import { pageSize } from "../admin/pagination.js";
import { operatorOf } from "../identity/principal.js";
import { listAuditRecords } from "./audit-store.js";
import { auditEventOf } from "./audit-event.js";
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
        events: rows.map((r) => auditEventOf(r, r.tenantId)),
        nextAfterSeq: rows.length === limit && last ? BigInt(last.seq) : 0n,
      };
    },
    async verifyAuditChain(_req, ctx) {
      const result = await verifyAuditChain(db, operatorOf(ctx).tenantId);
      return { ok: result.ok, checked: BigInt(result.checked), firstBadSeq: BigInt(result.firstBadSeq), message: result.message };
    },
  };
}
