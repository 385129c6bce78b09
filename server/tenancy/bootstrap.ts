import type { Kysely } from "kysely";
import { appendAudit } from "../audit/audit-log.js";
import type { Schema } from "../db/schema.js";
import type { Executor } from "../db/database.js";
import type { ApiKeyStore } from "../operators/api-key-store.js";
import { appendProviderAudit } from "./provider-audit.js";
import { createSystemKeyIfAbsent } from "./system-key-store.js";
import { firstTenant, getTenantByName, insertTenantIfAbsent } from "./tenant-store.js";

/** What first start created; `adminKey` and `systemKey` are the only time the secrets are available. */
export interface BootstrapResult {
  tenantId: string;
  tenantName: string;
  adminKey: string | undefined;
  adminKeyGenerated: boolean;
  /** The provider's system key (TenantService), when this start created it. */
  systemKey: string | undefined;
  systemKeyGenerated: boolean;
}

/** The name of the system key created on first start. */
export const BOOTSTRAP_SYSTEM_KEY_NAME = "bootstrap system";

/**
 * On an empty database, creates the default tenant and its first admin API key (the one from
 * AGW_BOOTSTRAP_ADMIN_KEY, or a new random one); and, on an empty database or the first start
 * after the upgrade that introduced tenancy, the provider's system key (AGW_BOOTSTRAP_SYSTEM_KEY,
 * or a new random one). Safe when several replicas start at once: only the replica whose
 * INSERT wins creates each key.
 */
export async function bootstrapTenant(
  db: Kysely<Schema>,
  keys: ApiKeyStore,
  options: { tenantName: string; bootstrapAdminKey: string | undefined; bootstrapSystemKey?: string | undefined },
): Promise<BootstrapResult> {
  return db.transaction().execute(async (trx) => {
    const tenant = await bootstrapDefaultTenant(trx, keys, options);
    const system = await createSystemKeyIfAbsent(trx, { name: BOOTSTRAP_SYSTEM_KEY_NAME, ...(options.bootstrapSystemKey ? { secret: options.bootstrapSystemKey } : {}) });
    if (system) {
      await appendProviderAudit(trx, {
        actor: { kind: "system" },
        action: "system_key.created",
        target: `system_key:${system.key.id}`,
        data: { name: system.key.name, bootstrap: true },
      });
    }
    return { ...tenant, systemKey: system?.secret, systemKeyGenerated: system !== undefined && !options.bootstrapSystemKey };
  });
}

async function bootstrapDefaultTenant(
  trx: Executor,
  keys: ApiKeyStore,
  options: { tenantName: string; bootstrapAdminKey: string | undefined },
): Promise<Omit<BootstrapResult, "systemKey" | "systemKeyGenerated">> {
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
  await appendProviderAudit(trx, { actor: { kind: "system" }, action: "tenant.created", target: `tenant:${inserted.id}`, data: { name: inserted.name, admin_key_id: key.id, bootstrap: true } });
  return { tenantId: inserted.id, tenantName: inserted.name, adminKey: secret, adminKeyGenerated: !options.bootstrapAdminKey };
}
