import type { Kysely } from "kysely";
import { appendAudit } from "../audit/audit-log.js";
import type { Schema } from "../db/schema.js";
import { NotFoundError } from "../errors/errors.js";
import type { Operator } from "../identity/principal.js";
import { type EnrollmentTokenRecord, getToken, insertToken, revokeToken } from "./token-store.js";

/** What an operator asks for when minting an enrollment token (defaults already applied). */
export interface TokenSpec {
  ttlMs: number;
  maxUses: number;
  pinnedAgentName: string | null;
  labels: Record<string, string>;
  requiresApproval: boolean;
  description: string;
}

/** Mints a token for the operator's tenant, audited in the same transaction; the secret is returned once. */
export async function createEnrollmentToken(db: Kysely<Schema>, operator: Operator, spec: TokenSpec): Promise<{ token: EnrollmentTokenRecord; secret: string }> {
  return db.transaction().execute(async (trx) => {
    const created = await insertToken(trx, { tenantId: operator.tenantId, ...spec, createdBy: operator.keyId });
    await appendAudit(trx, {
      tenantId: operator.tenantId,
      actor: { kind: "operator", keyId: operator.keyId },
      action: "enrollment_token.created",
      target: `enrollment_token:${created.token.id}`,
      data: { max_uses: created.token.maxUses, expires_at: created.token.expiresAt.toISOString(), requires_approval: created.token.requiresApproval },
    });
    return created;
  });
}

/** Revokes a token (idempotent: an already revoked one is returned as it is and not audited again). */
export async function revokeEnrollmentToken(db: Kysely<Schema>, operator: Operator, id: string): Promise<EnrollmentTokenRecord> {
  return db.transaction().execute(async (trx) => {
    const before = await getToken(trx, operator.tenantId, id);
    if (!before) throw new NotFoundError(`no enrollment token ${id}`);
    const after = await revokeToken(trx, operator.tenantId, id);
    if (!before.revokedAt && after) {
      await appendAudit(trx, { tenantId: operator.tenantId, actor: { kind: "operator", keyId: operator.keyId }, action: "enrollment_token.revoked", target: `enrollment_token:${id}` });
    }
    return after ?? before;
  });
}
