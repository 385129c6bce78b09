import type { Kysely } from "kysely";
import { countTenantAgents } from "../agents/agent-store.js";
import { appendAudit } from "../audit/audit-log.js";
import { deleteTenantAuditRecords } from "../audit/audit-store.js";
import type { Bus } from "../bus/bus.js";
import type { Schema } from "../db/schema.js";
import type { Executor } from "../db/database.js";
import { deleteTenantTokens } from "../enrollment/token-store.js";
import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from "../errors/errors.js";
import type { SystemIdentity } from "../identity/principal.js";
import type { ApiKeyStore } from "../operators/api-key-store.js";
import { deleteTenantReleaseKeys } from "../rollout/release-key-store.js";
import { countTenantRollouts } from "../rollout/rollout-store.js";
import { appendProviderAudit } from "./provider-audit.js";
import type { TenantGate } from "./tenant-gate.js";
import { deleteTenantRow, getTenantDetails, insertTenantIfAbsent, setTenantSuspension, type TenantDetails } from "./tenant-store.js";

/** What a tenant holds, for GetTenant and the delete rule. */
export interface TenantUsage {
  agents: number;
  activeApiKeys: number;
  rollouts: number;
  auditRecords: number;
}

/**
 * The provider plane: creating, suspending, resuming and deleting tenants. Every change is
 * recorded in the provider audit chain in its own transaction, and — where the tenant still
 * exists — in the tenant's own chain too, so its operators can see what the provider did.
 * After a suspension changes, every replica is told (`tenant_changed`) and this one re-reads
 * at once, so the caller's next call here already sees it.
 */
export class TenantService {
  constructor(
    private readonly db: Kysely<Schema>,
    private readonly bus: Bus,
    private readonly apiKeys: ApiKeyStore,
    private readonly gate: TenantGate,
  ) {}

  /** Creates a tenant and its first admin key; the key's secret is returned once. */
  async create(by: SystemIdentity, input: { name: string; adminKeyName: string }): Promise<{ tenant: TenantDetails; adminKeyId: string; adminKeySecret: string }> {
    return this.db.transaction().execute(async (trx) => {
      const inserted = await insertTenantIfAbsent(trx, input.name);
      if (!inserted) throw new AlreadyExistsError(`a tenant named "${input.name}" exists`);
      const { key, secret } = await this.apiKeys.create(trx, { tenantId: inserted.id, name: input.adminKeyName, role: "admin", createdBy: `system_key:${by.keyId}` });
      await appendAudit(trx, { tenantId: inserted.id, actor: { kind: "system" }, action: "tenant.created", target: `tenant:${inserted.id}`, data: { name: inserted.name } });
      await appendAudit(trx, { tenantId: inserted.id, actor: { kind: "system" }, action: "api_key.created", target: `api_key:${key.id}`, data: { name: key.name, role: key.role } });
      await appendProviderAudit(trx, {
        actor: { kind: "system_key", keyId: by.keyId },
        action: "tenant.created",
        target: `tenant:${inserted.id}`,
        data: { name: inserted.name, admin_key_id: key.id },
      });
      const tenant = await getTenantDetails(trx, inserted.id);
      if (!tenant) throw new Error("tenant vanished inside its own transaction");
      return { tenant, adminKeyId: key.id, adminKeySecret: secret };
    });
  }

  /** What the tenant holds. */
  async usage(db: Executor, tenant: TenantDetails): Promise<TenantUsage> {
    const [agents, activeApiKeys, rollouts] = await Promise.all([countTenantAgents(db, tenant.id), this.apiKeys.countActive(db, tenant.id), countTenantRollouts(db, tenant.id)]);
    return { agents, activeApiKeys, rollouts, auditRecords: tenant.auditSeq };
  }

  /** Suspends the tenant (again: replaces the reason) and closes its streams everywhere. */
  async suspend(by: SystemIdentity, id: string, reason: string): Promise<TenantDetails> {
    const tenant = await this.db.transaction().execute(async (trx) => {
      const before = await this.locked(trx, id);
      const after = await setTenantSuspension(trx, id, { reason });
      if (!after) throw new NotFoundError(`no tenant ${id}`);
      if (!before.suspendedAt || before.suspendReason !== reason) {
        await appendAudit(trx, { tenantId: id, actor: { kind: "system" }, action: "tenant.suspended", target: `tenant:${id}`, data: { reason } });
        await appendProviderAudit(trx, { actor: { kind: "system_key", keyId: by.keyId }, action: "tenant.suspended", target: `tenant:${id}`, data: { name: before.name, reason } });
      }
      return after;
    });
    await this.announce(id);
    return tenant;
  }

  /** Lifts a suspension (idempotent). */
  async resume(by: SystemIdentity, id: string): Promise<TenantDetails> {
    const tenant = await this.db.transaction().execute(async (trx) => {
      const before = await this.locked(trx, id);
      if (!before.suspendedAt) return before;
      const after = await setTenantSuspension(trx, id, null);
      if (!after) throw new NotFoundError(`no tenant ${id}`);
      await appendAudit(trx, { tenantId: id, actor: { kind: "system" }, action: "tenant.resumed", target: `tenant:${id}` });
      await appendProviderAudit(trx, { actor: { kind: "system_key", keyId: by.keyId }, action: "tenant.resumed", target: `tenant:${id}`, data: { name: before.name } });
      return after;
    });
    await this.announce(id);
    return tenant;
  }

  /**
   * Deletes a tenant that never had an agent or a rollout. Agents are never deleted (their
   * keys stay revocable, their history stays auditable), so a tenant that ever had one can only
   * be suspended. Its operator keys, enrollment tokens, release keys and audit chain go with it;
   * the provider record keeps the chain's length and head hash, so an exported copy of the
   * chain can still be checked against it.
   */
  async delete(by: SystemIdentity, id: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const tenant = await this.locked(trx, id);
      const usage = await this.usage(trx, tenant);
      if (usage.agents > 0 || usage.rollouts > 0) {
        throw new FailedPreconditionError(`tenant "${tenant.name}" has ${usage.agents} agent(s) and ${usage.rollouts} rollout(s): only a tenant that never had any can be deleted; suspend it instead`);
      }
      await deleteTenantAuditRecords(trx, id);
      await this.apiKeys.deleteForTenant(trx, id);
      await deleteTenantTokens(trx, id);
      await deleteTenantReleaseKeys(trx, id);
      await deleteTenantRow(trx, id);
      await appendProviderAudit(trx, {
        actor: { kind: "system_key", keyId: by.keyId },
        action: "tenant.deleted",
        target: `tenant:${id}`,
        data: { name: tenant.name, audit_records: tenant.auditSeq, audit_head: Buffer.from(tenant.auditHead).toString("hex") },
      });
    });
    await this.announce(id);
  }

  private async locked(trx: Executor, id: string): Promise<TenantDetails> {
    const tenant = await getTenantDetails(trx, id, true);
    if (!tenant) throw new NotFoundError(`no tenant ${id}`);
    return tenant;
  }

  private async announce(tenantId: string): Promise<void> {
    await this.gate.refresh();
    await this.bus.publish("tenant_changed", tenantId);
  }
}
