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

/** How stale `last_used_at` may be: it says "in use lately", not an access log (the audit is). */
const LAST_USED_RESOLUTION_MS = 60_000;
/** Keys whose last write is remembered here; past it the memory starts over (costing one write each). */
const LAST_USED_MEMORY = 10_000;

/** Queries over operator API keys. Secrets are looked up by SHA-256 only. */
export class ApiKeyStore {
  /** When this process last wrote each key's last_used_at, so a busy key costs one write a minute. */
  private readonly lastWritten = new Map<string, number>();

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
    if (!row) return undefined;
    this.touch(row.id);
    return { keyId: row.id, tenantId: row.tenant_id, role: row.role, name: row.name };
  }

  /**
   * Records that a key was used, at most once a minute per key and process, off the call's
   * path (a failed write only leaves the time older). The WHERE keeps replicas from repeating
   * each other's writes.
   */
  private touch(keyId: string): void {
    const now = Date.now();
    if (now - (this.lastWritten.get(keyId) ?? 0) < LAST_USED_RESOLUTION_MS) return;
    if (this.lastWritten.size >= LAST_USED_MEMORY) this.lastWritten.clear();
    this.lastWritten.set(keyId, now);
    const staleBefore = new Date(now - LAST_USED_RESOLUTION_MS);
    void this.db
      .updateTable("api_keys")
      .set({ last_used_at: new Date(now) })
      .where("id", "=", keyId)
      .where((eb) => eb.or([eb("last_used_at", "is", null), eb("last_used_at", "<", staleBefore)]))
      .execute()
      .catch(() => this.lastWritten.delete(keyId));
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

  /** How many keys of the tenant are not revoked (TenantService). */
  async countActive(db: Executor, tenantId: string): Promise<number> {
    const row = await db.selectFrom("api_keys").select((eb) => eb.fn.countAll<string>().as("n")).where("tenant_id", "=", tenantId).where("revoked_at", "is", null).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Deletes every key of a tenant being deleted (TenantService); calls with them fail at once. */
  async deleteForTenant(db: Executor, tenantId: string): Promise<void> {
    await db.deleteFrom("api_keys").where("tenant_id", "=", tenantId).execute();
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
