import type { Kysely } from "kysely";
import { appendAudit } from "../audit/audit-log.js";
import { isUniqueViolation } from "../db/errors.js";
import type { Schema } from "../db/schema.js";
import { AlreadyExistsError, InvalidInputError, NotFoundError } from "../errors/errors.js";
import type { Operator } from "../identity/principal.js";
import { isUsablePublicKey } from "../../client/protocol/ed25519.js";
import { getReleaseKey, insertReleaseKey, type ReleaseKeyRecord, revokeReleaseKey } from "./release-key-store.js";

/** Registers a release-signing key for the operator's tenant, audited in the same transaction. */
export async function registerReleaseKey(db: Kysely<Schema>, operator: Operator, input: { name: string; publicKey: Uint8Array }): Promise<ReleaseKeyRecord> {
  if (!isUsablePublicKey(input.publicKey)) throw new InvalidInputError("public_key is not a usable ed25519 key (small-order or non-canonical)");
  try {
    return await db.transaction().execute(async (trx) => {
      const inserted = await insertReleaseKey(trx, { tenantId: operator.tenantId, name: input.name, publicKey: input.publicKey });
      await appendAudit(trx, {
        tenantId: operator.tenantId,
        actor: { kind: "operator", keyId: operator.keyId },
        action: "release_key.registered",
        target: `release_key:${inserted.id}`,
        data: { name: input.name, public_key: Buffer.from(input.publicKey).toString("hex") },
      });
      return inserted;
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new AlreadyExistsError("this release key is already registered");
    throw err;
  }
}

/** Revokes a key (idempotent: an already revoked key is returned as it is, and not audited again). */
export async function revokeTenantReleaseKey(db: Kysely<Schema>, operator: Operator, id: string): Promise<ReleaseKeyRecord> {
  return db.transaction().execute(async (trx) => {
    const updated = await revokeReleaseKey(trx, operator.tenantId, id);
    if (updated) {
      await appendAudit(trx, { tenantId: operator.tenantId, actor: { kind: "operator", keyId: operator.keyId }, action: "release_key.revoked", target: `release_key:${id}` });
      return updated;
    }
    const existing = await getReleaseKey(trx, operator.tenantId, id);
    if (!existing) throw new NotFoundError(`no release key ${id}`);
    return existing;
  });
}
