import type { Kysely } from "kysely";
import { appendAudit } from "../audit/audit-log.js";
import type { Schema } from "../db/schema.js";
import type { ApiKeyStore } from "../operators/api-key-store.js";
import { firstTenant, getTenantByName, insertTenantIfAbsent } from "./tenant-store.js";

/** What first start created; `adminKey` is the only time the secret is available. */
export interface BootstrapResult {
  tenantId: string;
  tenantName: string;
  adminKey: string | undefined;
  adminKeyGenerated: boolean;
}

/**
 * On an empty database, creates the default tenant and its first admin API key (the one from
 * AGW_BOOTSTRAP_ADMIN_KEY, or a new random one). Safe when several replicas start at once:
 * only the replica whose INSERT wins creates the key.
 */
export async function bootstrapTenant(
  db: Kysely<Schema>,
  keys: ApiKeyStore,
  options: { tenantName: string; bootstrapAdminKey: string | undefined },
): Promise<BootstrapResult> {
  return db.transaction().execute(async (trx) => {
    const anyTenant = await firstTenant(trx);
    if (anyTenant) return { tenantId: anyTenant.id, tenantName: anyTenant.name, adminKey: undefined, adminKeyGenerated: false };
    const inserted = await insertTenantIfAbsent(trx, options.tenantName);
    if (!inserted) {
      const existing = await getTenantByName(trx, options.tenantName);
      return { tenantId: existing.id, tenantName: existing.name, adminKey: undefined, adminKeyGenerated: false };
    }
    const { key, secret } = await keys.create(trx, {
      tenantId: inserted.id,
      name: "bootstrap admin",
      role: "admin",
      createdBy: "system",
      ...(options.bootstrapAdminKey ? { secret: options.bootstrapAdminKey } : {}),
    });
    await appendAudit(trx, { tenantId: inserted.id, actor: { kind: "system" }, action: "tenant.created", target: `tenant:${inserted.id}`, data: { name: inserted.name } });
    await appendAudit(trx, { tenantId: inserted.id, actor: { kind: "system" }, action: "api_key.created", target: `api_key:${key.id}`, data: { name: key.name, role: key.role, bootstrap: true } });
    return { tenantId: inserted.id, tenantName: inserted.name, adminKey: secret, adminKeyGenerated: !options.bootstrapAdminKey };
  });
}
