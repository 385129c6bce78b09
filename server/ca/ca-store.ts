import { sql } from "kysely";
import type { Executor } from "../db/database.js";
import type { CaRoleName } from "../db/schema.js";

/** A CA certificate as stored: DER, with its key sealed (or null when the key is kept elsewhere). */
export interface StoredCaCertificate {
  id: string;
  role: CaRoleName;
  certificateDer: Uint8Array;
  sealedKey: string | null;
  fingerprintSha256: string;
  notBefore: Date;
  notAfter: Date;
  retiredAt: Date | null;
}

// Any constant works: it only has to differ from the other advisory locks of the schema.
const CA_LOCK_KEY = 7243010;

/**
 * Serialises creating, importing and rotating the CA across replicas for the rest of the
 * transaction (released by commit or rollback).
 */
export async function lockCa(trx: Executor): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(${CA_LOCK_KEY}::bigint)`.execute(trx);
}

/** Every CA certificate that has not expired at `now`, current ones first, newest first. */
export async function listCaCertificates(db: Executor, now: Date): Promise<StoredCaCertificate[]> {
  const rows = await db
    .selectFrom("ca_certificates")
    .selectAll()
    .where("not_after", ">", now)
    .orderBy(sql`retired_at IS NULL`, "desc")
    .orderBy("created_at", "desc")
    .execute();
  return rows.map((r) => ({
    id: r.id,
    role: r.role,
    certificateDer: r.certificate_der,
    sealedKey: r.sealed_key,
    fingerprintSha256: r.fingerprint_sha256,
    notBefore: r.not_before,
    notAfter: r.not_after,
    retiredAt: r.retired_at,
  }));
}

/** Stores a CA certificate as current for its role (the caller retired the previous one). */
export async function insertCaCertificate(db: Executor, cert: Omit<StoredCaCertificate, "retiredAt">): Promise<void> {
  await db
    .insertInto("ca_certificates")
    .values({
      id: cert.id,
      role: cert.role,
      certificate_der: cert.certificateDer,
      sealed_key: cert.sealedKey,
      fingerprint_sha256: cert.fingerprintSha256,
      not_before: cert.notBefore,
      not_after: cert.notAfter,
    })
    .execute();
}

/** Retires the current certificate of a role: it stays trusted until it expires but issues nothing more. */
export async function retireCurrent(db: Executor, role: CaRoleName, at: Date): Promise<void> {
  await db.updateTable("ca_certificates").set({ retired_at: at }).where("role", "=", role).where("retired_at", "is", null).execute();
}
