import { randomBytes } from "node:crypto";
import { sql } from "kysely";
import type { Executor } from "../db/database.js";

// Owner of handshake_keys: the MAC keys of stateless challenges (server/auth/challenge-mac.ts).

/** A stored MAC key and how long ago (database clock) it was added. */
export interface StoredHandshakeKey {
  id: number;
  secret: Buffer;
  ageMs: number;
}

/**
 * Adds key 1 (32 random bytes) unless a key exists. Replicas and workers starting at once
 * race on the primary key, and all end up with the one row that won.
 */
export async function ensureHandshakeKey(db: Executor): Promise<void> {
  await db
    .insertInto("handshake_keys")
    .values({ id: 1, secret: new Uint8Array(randomBytes(32)) })
    .onConflict((oc) => oc.column("id").doNothing())
    .execute();
}

/** The newest `limit` keys, newest first. */
export async function newestHandshakeKeys(db: Executor, limit: number): Promise<StoredHandshakeKey[]> {
  const rows = await db
    .selectFrom("handshake_keys")
    .select(["id", "secret", sql<number>`(extract(epoch from now() - created_at) * 1000)::float8`.as("age_ms")])
    .orderBy("id", "desc")
    .limit(limit)
    .execute();
  return rows.map((r) => ({ id: r.id, secret: Buffer.from(r.secret), ageMs: Number(r.age_ms) }));
}

/** Adds a new key (rotation); it starts signing once every replica has had time to load it. */
export async function addHandshakeKey(db: Executor): Promise<number> {
  const row = await db
    .insertInto("handshake_keys")
    .columns(["id", "secret"])
    .expression((eb) =>
      eb.selectFrom("handshake_keys").select([sql<number>`coalesce(max(id), 0) + 1`.as("id"), sql<Uint8Array>`${new Uint8Array(randomBytes(32))}::bytea`.as("secret")]),
    )
    .returning("id")
    .executeTakeFirstOrThrow();
  return row.id;
}
