import type { ServiceImpl } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type EnrollmentTokenSchema,
  type EnrollmentTokenService,
  EnrollmentTokenState,
} from "../../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import type { AppContext } from "../app/context.js";
import { createdPageToken, decodeCreatedPageToken, pageSize } from "../admin/pagination.js";
import { operatorOf } from "../identity/principal.js";
import { type EnrollmentTokenRecord, listTokens, tokenState } from "./token-store.js";
import { createEnrollmentToken, revokeEnrollmentToken } from "./token-service.js";

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
      const { token, secret } = await createEnrollmentToken(db, operator, {
        ttlMs: req.ttl ? durationMs(req.ttl) : app.config.enrollmentTokenTtlMs,
        maxUses: req.maxUses || 1,
        pinnedAgentName: req.pinnedAgentName || null,
        labels: req.labels,
        requiresApproval: req.requiresApproval,
        description: req.description,
      });
      return { token: toProto(token), secret };
    },

    async listEnrollmentTokens(req, ctx) {
      const operator = operatorOf(ctx);
      const limit = pageSize(req.pageSize, 100, 500);
      const after = decodeCreatedPageToken(req.pageToken);
      const tokens = await listTokens(db, {
        tenantId: operator.tenantId,
        activeOnly: !req.includeInactive,
        limit,
        ...(after ? { after } : {}),
      });
      const last = tokens.at(-1);
      return {
        tokens: tokens.map(toProto),
        nextPageToken: tokens.length === limit && last ? createdPageToken(last) : "",
      };
    },

    async revokeEnrollmentToken(req, ctx) {
      const token = await revokeEnrollmentToken(db, operatorOf(ctx), req.id);
      return { token: toProto(token) };
    },
  };
}
