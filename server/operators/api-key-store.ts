import { randomUUID } from "node:crypto";
import type { Executor } from "../db/database.js";
import type { RoleName } from "../db/schema.js";
import { hashSecret, newSecret, parseSecret, secretFingerprint } from "../../client/protocol/secrets.js";
import type { Operator } from "../identity/principal.js";

/** An operator API key as the admin API shows it (never the secret). */
export interface ApiKeyRecord {
  id: string;
  tenantId: string;
  name: string;
  role: RoleName;
  displayPrefix: string;
  createdAt: Date;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

const COLUMNS = ["id", "tenant_id", "name", "role", "display_prefix", "created_at", "revoked_at", "last_used_at"] as const;

/** Queries over operator API keys. Secrets are looked up by SHA-256 only. */
export class ApiKeyStore {
  constructor(private readonly db: Executor) {}

  /** The operator behind a presented key, or undefined for unknown, malformed or revoked keys. */
  async authenticate(secret: string): Promise<Operator | undefined> {
    // A shape check first, so garbage never reaches the database.
    if (secret.length > 512 || (!parseSecret(secret, "apiKey") && secret.length < 32)) return undefined;
    const row = await this.db
      .selectFrom("api_keys")
      .select(["id", "tenant_id", "role", "name"])
      .where("key_hash", "=", hashSecret(secret))
      .where("revoked_at", "is", null)
      .executeTakeFirst();
    return row ? { keyId: row.id, tenantId: row.tenant_id, role: row.role, name: row.name } : undefined;
  }

  /**
   * Creates a key. With `secret` (the bootstrap key from AGW_BOOTSTRAP_ADMIN_KEY) that string is
   * the key; otherwise a new random one is minted. Returns the secret once.
   */
  async create(
    db: Executor,
    input: { tenantId: string; name: string; role: RoleName; createdBy: string; secret?: string },
  ): Promise<{ key: ApiKeyRecord; secret: string }> {
    const minted = input.secret
      ? { secret: input.secret, hash: hashSecret(input.secret), displayPrefix: secretFingerprint("apiKey", input.secret) }
      : newSecret("apiKey");
    const row = await db
      .insertInto("api_keys")
      .values({
        id: randomUUID(),
        tenant_id: input.tenantId,
        name: input.name,
        role: input.role,
        key_hash: minted.hash,
        display_prefix: minted.displayPrefix,
        created_by: input.createdBy,
      })
      .returning(COLUMNS)
      .executeTakeFirstOrThrow();
    return { key: toRecord(row), secret: minted.secret };
  }

  /** The tenant's keys, newest first. */
  async list(tenantId: string, includeRevoked: boolean): Promise<ApiKeyRecord[]> {
    let query = this.db.selectFrom("api_keys").select(COLUMNS).where("tenant_id", "=", tenantId);
    if (!includeRevoked) query = query.where("revoked_at", "is", null);
    const rows = await query.orderBy("created_at", "desc").execute();
    return rows.map(toRecord);
  }

  /** One key of the tenant, or undefined. */
  async get(db: Executor, tenantId: string, id: string): Promise<ApiKeyRecord | undefined> {
    const row = await db.selectFrom("api_keys").select(COLUMNS).where("tenant_id", "=", tenantId).where("id", "=", id).executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  /** Marks a key revoked (idempotent); returns the key, or undefined if the tenant has none such. */
  async revoke(db: Executor, tenantId: string, id: string): Promise<ApiKeyRecord | undefined> {
    await db
      .updateTable("api_keys")
      .set({ revoked_at: new Date() })
      .where("tenant_id", "=", tenantId)
      .where("id", "=", id)
      .where("revoked_at", "is", null)
      .execute();
    return this.get(db, tenantId, id);
  }
}

function toRecord(row: {
  id: string;
  tenant_id: string;
  name: string;
  role: RoleName;
  display_prefix: string;
  created_at: Date;
  revoked_at: Date | null;
  last_used_at: Date | null;
}): ApiKeyRecord {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    name: row.name,
    role: row.role,
    displayPrefix: row.display_prefix,
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
  };
}
