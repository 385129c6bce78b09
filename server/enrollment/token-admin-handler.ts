import type { ServiceImpl } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type EnrollmentTokenSchema,
  type EnrollmentTokenService,
  EnrollmentTokenState,
} from "../../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import type { AppContext } from "../app/context.js";
import { decodePageToken, encodePageToken, pageSize } from "../admin/pagination.js";
import { appendAudit } from "../audit/audit-log.js";
import { NotFoundError } from "../errors/errors.js";
import { operatorOf } from "../identity/principal.js";
import { type EnrollmentTokenRecord, getToken, insertToken, listTokens, revokeToken, tokenState } from "./token-store.js";

const STATE: Record<ReturnType<typeof tokenState>, EnrollmentTokenState> = {
  active: EnrollmentTokenState.ACTIVE,
  used: EnrollmentTokenState.USED,
  expired: EnrollmentTokenState.EXPIRED,
  revoked: EnrollmentTokenState.REVOKED,
};

function toProto(token: EnrollmentTokenRecord): MessageInitShape<typeof EnrollmentTokenSchema> {
  return {
    id: token.id,
    displayPrefix: token.displayPrefix,
    description: token.description,
    pinnedAgentName: token.pinnedAgentName ?? "",
    labels: token.labels,
    requiresApproval: token.requiresApproval,
    maxUses: token.maxUses,
    usesLeft: Math.max(0, token.maxUses - token.uses),
    expiresAt: timestampFromDate(token.expiresAt),
    createdAt: timestampFromDate(token.createdAt),
    revokedAt: token.revokedAt ? timestampFromDate(token.revokedAt) : undefined,
    state: STATE[tokenState(token)],
    createdBy: token.createdBy,
  };
}

/** agentgateway.admin.v1.EnrollmentTokenService. */
export function enrollmentTokenService(app: AppContext): ServiceImpl<typeof EnrollmentTokenService> {
  const db = app.database.db;
  return {
    async createEnrollmentToken(req, ctx) {
      const operator = operatorOf(ctx);
      const { token, secret } = await db.transaction().execute(async (trx) => {
        const created = await insertToken(trx, {
          tenantId: operator.tenantId,
          ttlMs: req.ttl ? durationMs(req.ttl) : app.config.enrollmentTokenTtlMs,
          maxUses: req.maxUses || 1,
          pinnedAgentName: req.pinnedAgentName || null,
          labels: req.labels,
          requiresApproval: req.requiresApproval,
          description: req.description,
          createdBy: operator.keyId,
        });
        await appendAudit(trx, {
          tenantId: operator.tenantId,
          actor: { kind: "operator", keyId: operator.keyId },
          action: "enrollment_token.created",
          target: `enrollment_token:${created.token.id}`,
          data: { max_uses: created.token.maxUses, expires_at: created.token.expiresAt.toISOString(), requires_approval: created.token.requiresApproval },
        });
        return created;
      });
      return { token: toProto(token), secret };
    },

    async listEnrollmentTokens(req, ctx) {
      const operator = operatorOf(ctx);
      const limit = pageSize(req.pageSize, 100, 500);
      const after = decodePageToken<{ c: string; i: string }>(req.pageToken, ["c", "i"]);
      const tokens = await listTokens(db, {
        tenantId: operator.tenantId,
        activeOnly: !req.includeInactive,
        limit,
        ...(after ? { after: { createdAt: new Date(after.c), id: after.i } } : {}),
      });
      const last = tokens.at(-1);
      return {
        tokens: tokens.map(toProto),
        nextPageToken: tokens.length === limit && last ? encodePageToken({ c: last.createdAt.toISOString(), i: last.id }) : "",
      };
    },

    async revokeEnrollmentToken(req, ctx) {
      const operator = operatorOf(ctx);
      const token = await db.transaction().execute(async (trx) => {
        const before = await getToken(trx, operator.tenantId, req.id);
        if (!before) throw new NotFoundError(`no enrollment token ${req.id}`);
        const after = await revokeToken(trx, operator.tenantId, req.id);
        if (!before.revokedAt && after) {
          await appendAudit(trx, {
            tenantId: operator.tenantId,
            actor: { kind: "operator", keyId: operator.keyId },
            action: "enrollment_token.revoked",
            target: `enrollment_token:${req.id}`,
          });
        }
        return after ?? before;
      });
      return { token: toProto(token) };
    },
  };
}
