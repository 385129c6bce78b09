import type { Kysely } from "kysely";
import { appendAudit } from "../audit/audit-log.js";
import type { RoleName, Schema } from "../db/schema.js";
import { FailedPreconditionError, NotFoundError } from "../errors/errors.js";
import type { Operator } from "../identity/principal.js";
import type { ApiKeyRecord, ApiKeyStore } from "./api-key-store.js";

/** Creates an operator key in the operator's tenant, audited in the same transaction; the secret is returned once. */
export async function createOperatorKey(
  db: Kysely<Schema>,
  keys: ApiKeyStore,
  operator: Operator,
  input: { name: string; role: RoleName },
): Promise<{ key: ApiKeyRecord; secret: string }> {
  return db.transaction().execute(async (trx) => {
    const created = await keys.create(trx, { tenantId: operator.tenantId, name: input.name, role: input.role, createdBy: operator.keyId });
    await appendAudit(trx, {
      tenantId: operator.tenantId,
      actor: { kind: "operator", keyId: operator.keyId },
      action: "api_key.created",
      target: `api_key:${created.key.id}`,
      data: { name: input.name, role: input.role },
    });
    return created;
  });
}

/** Revokes a key of the tenant (idempotent; a key cannot revoke itself, so an admin cannot lock everyone out by accident). */
export async function revokeOperatorKey(db: Kysely<Schema>, keys: ApiKeyStore, operator: Operator, id: string): Promise<ApiKeyRecord> {
  if (id === operator.keyId) throw new FailedPreconditionError("a key cannot revoke itself; use another admin key");
  return db.transaction().execute(async (trx) => {
    const before = await keys.get(trx, operator.tenantId, id);
    if (!before) throw new NotFoundError(`no API key ${id}`);
    const after = await keys.revoke(trx, operator.tenantId, id);
    if (!before.revokedAt) {
      await appendAudit(trx, { tenantId: operator.tenantId, actor: { kind: "operator", keyId: operator.keyId }, action: "api_key.revoked", target: `api_key:${id}` });
    }
    return after ?? before;
  });
}
