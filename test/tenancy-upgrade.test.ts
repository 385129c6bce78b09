// Upgrading an installation that predates tenancy (issue 14): migration 0011 runs over real
// rows (its composite foreign keys validate them), the existing tenant and its keys keep
// working, and the first start after the upgrade creates the provider's system key — once.
// A database that already holds a cross-tenant link is refused by the migration, not kept.
import { randomUUID } from "node:crypto";
import { Migrator, sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { ApiKeyService } from "../gen/agentgateway/admin/v1/api_keys_pb.js";
import { AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { TenantService } from "../gen/agentgateway/provider/v1/tenants_pb.js";
import { migrationProvider } from "../migrations/index.js";
import { openDatabase } from "../server/db/database.js";
import { createLogger } from "../server/observability/logger.js";
import { hashSecret, newSecret, parseSecret } from "../client/protocol/secrets.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { startTestGateway } from "./support/gateway.js";

const dropping: TestDatabase[] = [];
afterEach(async () => {
  for (const d of dropping.splice(0)) await d.drop();
});

/** A database migrated to 0008 (the last schema without tenancy) with one tenant, an admin key and an agent. */
async function databaseBeforeTenancy(options: { crossTenantSession?: boolean } = {}) {
  const database = await createTestDatabase();
  dropping.push(database);
  const opened = await openDatabase({ databaseUrl: database.url, dataDir: "", poolSize: 2, logger: createLogger("silent") });
  const db = opened.db;
  const { error } = await new Migrator({ db, provider: migrationProvider }).migrateTo("0008-host-labels");
  if (error) throw error;
  const tenantId = randomUUID();
  const otherTenant = randomUUID();
  const agentId = randomUUID();
  const admin = newSecret("apiKey");
  await sql`INSERT INTO tenants (id, name) VALUES (${tenantId}, 'default'), (${otherTenant}, 'other')`.execute(db);
  await sql`INSERT INTO api_keys (id, tenant_id, name, role, key_hash, display_prefix, created_by) VALUES (${randomUUID()}, ${tenantId}, 'old admin', 'admin', ${hashSecret(admin.secret)}, ${admin.displayPrefix}, 'system')`.execute(db);
  await sql`INSERT INTO agents (id, tenant_id, name, identity_public_key, verification_code, state) VALUES (${agentId}, ${tenantId}, 'old-agent', ${new Uint8Array(32).fill(5)}, 'code', 'ACTIVE')`.execute(db);
  const sessionTenant = options.crossTenantSession ? otherTenant : tenantId;
  await sql`INSERT INTO sessions (agent_id, id, tenant_id, token_hash, expires_at) VALUES (${agentId}, ${randomUUID()}, ${sessionTenant}, ${new Uint8Array(32).fill(1)}, now() + interval '1 hour')`.execute(db);
  await opened.close();
  return { database, adminKey: admin.secret, agentId };
}

describe("upgrading to tenancy", () => {
  it("keeps the tenant, its keys and agents, and creates the system key on the first start after the upgrade only", async () => {
    const old = await databaseBeforeTenancy();
    const first = await startTestGateway({ bootstrapAdminKey: "", bootstrapSystemKey: "" }, old.database);
    try {
      expect(first.gateway.bootstrap.adminKey).toBeUndefined();
      const systemKey = first.gateway.bootstrap.systemKey ?? "";
      expect(parseSecret(systemKey, "systemKey")).toBe(true);
      const me = await first.admin(ApiKeyService, old.adminKey).whoAmI({});
      expect(me.tenantName).toBe("default");
      expect((await first.admin(AgentService, old.adminKey).getAgent({ id: old.agentId })).agent?.name).toBe("old-agent");
      const tenants = await first.admin(TenantService, systemKey).listTenants({});
      expect(tenants.tenants.map((t) => t.name).sort()).toEqual(["default", "other"]);
    } finally {
      await first.gateway.stop();
    }
    const second = await startTestGateway({ bootstrapAdminKey: "", bootstrapSystemKey: "" }, old.database);
    try {
      expect(second.gateway.bootstrap.systemKey).toBeUndefined();
    } finally {
      await second.gateway.stop();
    }
  });

  it("refuses to migrate a database that holds a cross-tenant link", async () => {
    const old = await databaseBeforeTenancy({ crossTenantSession: true });
    await expect(startTestGateway({ bootstrapAdminKey: "", bootstrapSystemKey: "" }, old.database)).rejects.toThrow(/sessions_tenant_agent_id_fkey/);
  });
});
