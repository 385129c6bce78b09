import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import type { Executor } from "../db/database.js";
import { newSecret } from "../../client/protocol/secrets.js";

/** An enrollment token without its secret. */
export interface EnrollmentTokenRecord {
  id: string;
  tenantId: string;
  displayPrefix: string;
  description: string;
  pinnedAgentName: string | null;
  labels: Record<string, string>;
  requiresApproval: boolean;
  maxUses: number;
  uses: number;
  expiresAt: Date;
  revokedAt: Date | null;
  createdAt: Date;
  createdBy: string;
}

/** Why a token cannot be redeemed now, or "active". */
export type TokenState = "active" | "used" | "expired" | "revoked";

/** The token's state at `now`; revoked wins over used, used over expired. */
export function tokenState(token: EnrollmentTokenRecord, now = new Date()): TokenState {
  if (token.revokedAt) return "revoked";
  if (token.uses >= token.maxUses) return "used";
  if (token.expiresAt <= now) return "expired";
  return "active";
}

const COLUMNS = [
  "id", "tenant_id", "display_prefix", "description", "pinned_agent_name", "labels", "requires_approval",
  "max_uses", "uses", "expires_at", "revoked_at", "created_at", "created_by",
] as const;

type Row = {
  id: string; tenant_id: string; display_prefix: string; description: string; pinned_agent_name: string | null;
  labels: Record<string, string>; requires_approval: boolean; max_uses: number; uses: number; expires_at: Date;
  revoked_at: Date | null; created_at: Date; created_by: string;
};

/** Creates a token and returns it with its secret (the only time the secret exists outside the caller). */
export async function insertToken(
  db: Executor,
  input: {
    tenantId: string; ttlMs: number; maxUses: number; pinnedAgentName: string | null; labels: Record<string, string>;
    requiresApproval: boolean; description: string; createdBy: string;
  },
): Promise<{ token: EnrollmentTokenRecord; secret: string }> {
  const minted = newSecret("enrollment");
  const row = await db
    .insertInto("enrollment_tokens")
    .values({
      id: randomUUID(),
      tenant_id: input.tenantId,
      token_hash: minted.hash,
      display_prefix: minted.displayPrefix,
      description: input.description,
      pinned_agent_name: input.pinnedAgentName,
      labels: JSON.stringify(input.labels),
      requires_approval: input.requiresApproval,
      max_uses: input.maxUses,
      expires_at: new Date(Date.now() + input.ttlMs),
      created_by: input.createdBy,
    })
    .returning(COLUMNS)
    .executeTakeFirstOrThrow();
  return { token: toRecord(row), secret: minted.secret };
}

/**
 * Consumes one use of the token atomically: the conditional UPDATE takes the row lock, so two
 * agents racing for the last use cannot both win. Returns undefined when it cannot be redeemed.
 */
export async function redeemToken(db: Executor, tokenHash: Uint8Array): Promise<EnrollmentTokenRecord | undefined> {
  const row = await db
    .updateTable("enrollment_tokens")
    .set({ uses: sql`uses + 1` })
    .where("token_hash", "=", tokenHash)
    .where("revoked_at", "is", null)
    .where("expires_at", ">", sql<Date>`now()`)
    .where(sql<boolean>`uses < max_uses`)
    .returning(COLUMNS)
    .executeTakeFirst();
  return row ? toRecord(row) : undefined;
}

/** Looks a token up by its hash (to explain why redeeming failed). */
export async function findTokenByHash(db: Executor, tokenHash: Uint8Array): Promise<EnrollmentTokenRecord | undefined> {
  const row = await db.selectFrom("enrollment_tokens").select(COLUMNS).where("token_hash", "=", tokenHash).executeTakeFirst();
  return row ? toRecord(row) : undefined;
}

/** One token of the tenant. */
export async function getToken(db: Executor, tenantId: string, id: string): Promise<EnrollmentTokenRecord | undefined> {
  const row = await db.selectFrom("enrollment_tokens").select(COLUMNS).where("tenant_id", "=", tenantId).where("id", "=", id).executeTakeFirst();
  return row ? toRecord(row) : undefined;
}

/** The tenant's tokens, newest first, keyset-paginated by (created_at, id). */
export async function listTokens(
  db: Executor,
  input: { tenantId: string; activeOnly: boolean; limit: number; after?: { createdAt: Date; id: string } },
): Promise<EnrollmentTokenRecord[]> {
  let query = db.selectFrom("enrollment_tokens").select(COLUMNS).where("tenant_id", "=", input.tenantId);
  if (input.activeOnly) {
    query = query.where("revoked_at", "is", null).where("expires_at", ">", sql<Date>`now()`).where(sql<boolean>`uses < max_uses`);
  }
  if (input.after) {
    const { createdAt, id } = input.after;
    query = query.where((eb) => eb.or([eb("created_at", "<", createdAt), eb.and([eb("created_at", "=", createdAt), eb("id", "<", id)])]));
  }
  const rows = await query.orderBy("created_at", "desc").orderBy("id", "desc").limit(input.limit).execute();
  return rows.map(toRecord);
}

/** Revokes a token (idempotent). */
export async function revokeToken(db: Executor, tenantId: string, id: string): Promise<EnrollmentTokenRecord | undefined> {
  await db.updateTable("enrollment_tokens").set({ revoked_at: new Date() }).where("tenant_id", "=", tenantId).where("id", "=", id).where("revoked_at", "is", null).execute();
  return getToken(db, tenantId, id);
}

/** Deletes every token of a tenant being deleted (TenantService; it has no agents that point at them). */
export async function deleteTenantTokens(db: Executor, tenantId: string): Promise<void> {
  await db.deleteFrom("enrollment_tokens").where("tenant_id", "=", tenantId).execute();
}

function toRecord(row: Row): EnrollmentTokenRecord {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    displayPrefix: row.display_prefix,
    description: row.description,
    pinnedAgentName: row.pinned_agent_name,
    labels: row.labels,
    requiresApproval: row.requires_approval,
    maxUses: row.max_uses,
    uses: row.uses,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    createdAt: row.created_at,
    createdBy: row.created_by,
  };
}
