import type { Kysely } from "kysely";
import type { Schema } from "../db/schema.js";
import { AlreadyExistsError, UnauthenticatedError } from "../errors/errors.js";
import type { SystemIdentity } from "../identity/principal.js";
import { appendProviderAudit } from "./provider-audit.js";
import { createSystemKeyIfAbsent, revokeSystemKey, type SystemKeyRecord } from "./system-key-store.js";

/**
 * Rotation of the provider's system key. System keys are looked up in the database on every
 * call (system-auth.ts keeps no cache: provider calls are rare), so the revocation committed
 * here is what every replica sees on the presented key's next call — nothing to announce on
 * the bus.
 */
export class SystemKeyService {
  constructor(private readonly db: Kysely<Schema>) {}

  /**
   * Revokes the calling key and mints its replacement, in one transaction with the provider
   * audit record. The secret is returned once and appears nowhere else (not in the audit
   * record, not in a log line).
   */
  async rotate(by: SystemIdentity, input: { name: string; now?: Date }): Promise<{ key: SystemKeyRecord; secret: string; revoked: SystemKeyRecord }> {
    const name = input.name || `rotated ${(input.now ?? new Date()).toISOString()}`;
    return this.db.transaction().execute(async (trx) => {
      // The row lock of this UPDATE orders concurrent rotations of the same key: the second
      // finds it revoked and is refused, so one key is never replaced twice.
      const revoked = await revokeSystemKey(trx, by.keyId);
      if (!revoked) throw new UnauthenticatedError("system key is not valid (unknown or revoked): it was rotated meanwhile");
      const created = await createSystemKeyIfAbsent(trx, { name });
      if (!created) throw new AlreadyExistsError(`a system key named "${name}" exists (revoked keys keep their names)`);
      await appendProviderAudit(trx, {
        actor: { kind: "system_key", keyId: by.keyId },
        action: "system_key.rotated",
        target: `system_key:${revoked.id}`,
        data: { new_key_id: created.key.id, new_key_name: created.key.name, new_key_fingerprint: created.key.displayPrefix, revoked_key_name: revoked.name },
      });
      return { key: created.key, secret: created.secret, revoked };
    });
  }
}
