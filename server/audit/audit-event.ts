import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { AuditEventSchema } from "../../gen/agentgateway/admin/v1/audit_pb.js";
import type { ChainRecord } from "./audit-store.js";

/** A chain record as the API's AuditEvent (tenant chains and the provider's, whose tenant id is empty). */
export function auditEventOf(record: ChainRecord, tenantId: string): MessageInitShape<typeof AuditEventSchema> {
  return {
    seq: BigInt(record.seq),
    tenantId,
    actor: record.actor,
    action: record.action,
    target: record.target,
    data: record.data as JsonObject,
    createdAt: timestampFromDate(record.createdAt),
    prevHash: record.prevHash,
    hash: record.hash,
  };
}
