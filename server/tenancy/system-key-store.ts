import { randomUUID } from "node:crypto";
import type { Executor } from "../db/database.js";
import { constantTimeEqual, hashSecret, newSecret, secretFingerprint } from "../../client/protocol/secrets.js";

/** A system key as the provider plane shows it (never the secret). */
export interface SystemKeyRecord {
  id: string;
  name: string;
  displayPrefix: string;
  createdAt: Date;
}

const COLUMNS = ["id", "name", "display_prefix", "created_at"] as const;

function toRecord(row: { id: string; name: string; display_prefix: string; created_at: Date }): SystemKeyRecord {
  return { id: row.id, name: row.name, displayPrefix: row.display_prefix, createdAt: row.created_at };
}

/**
 * Creates the system key called `name` unless a key of that name exists, live or revoked
 * (replicas starting at once create it once; a rotation cannot reuse a name). With `secret` (AGW_BOOTSTRAP_SYSTEM_KEY) that string is the key;
 * otherwise a new random one is minted. Returns the secret once, or undefined when the key
 * existed already.
 */
export async function createSystemKeyIfAbsent(db: Executor, input: { name: string; secret?: string }): Promise<{ key: SystemKeyRecord; secret: string } | undefined> {
  const minted = input.secret
    ? { secret: input.secret, hash: hashSecret(input.secret), displayPrefix: secretFingerprint("systemKey", input.secret) }
    : newSecret("systemKey");
  const row = await db
    .insertInto("system_keys")
    .values({ id: randomUUID(), name: input.name, key_hash: minted.hash, display_prefix: minted.displayPrefix })
    .onConflict((oc) => oc.column("name").doNothing())
    .returning(COLUMNS)
    .executeTakeFirst();
  return row ? { key: toRecord(row), secret: minted.secret } : undefined;
}

/**
 * Revokes a live system key; undefined when it is unknown or revoked already. The row stays (its
 * name keeps the bootstrap from minting "bootstrap system" again on the next start), and
 * findSystemKey never matches it again.
 */
export async function revokeSystemKey(db: Executor, id: string): Promise<SystemKeyRecord | undefined> {
  const row = await db.updateTable("system_keys").set({ revoked_at: new Date() }).where("id", "=", id).where("revoked_at", "is", null).returning(COLUMNS).executeTakeFirst();
  return row ? toRecord(row) : undefined;
}

/**
 * The live system key behind a presented secret, or undefined. Looked up by SHA-256 only; the
 * stored hash is compared again in constant time, so the answer never depends on how much of
 * a guess matched.
 */
export async function findSystemKey(db: Executor, secret: string): Promise<SystemKeyRecord | undefined> {
  if (secret.length < 32 || secret.length > 512) return undefined;
  const hash = hashSecret(secret);
  const row = await db
    .selectFrom("system_keys")
    .select([...COLUMNS, "key_hash"])
    .where("key_hash", "=", hash)
    .where("revoked_at", "is", null)
    .executeTakeFirst();
  if (!row || !constantTimeEqual(new Uint8Array(row.key_hash), hash)) return undefined;
  return toRecord(row);
}

/** A live system key by id (WhoAmI), or undefined when it is unknown or revoked. */
export async function getLiveSystemKey(db: Executor, id: string): Promise<SystemKeyRecord | undefined> {
  const row = await db.selectFrom("system_keys").select(COLUMNS).where("id", "=", id).where("revoked_at", "is", null).executeTakeFirst();
  return row ? toRecord(row) : undefined;
}
