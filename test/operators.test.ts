import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { ApiKeyService, Role } from "../gen/agentgateway/admin/v1/api_keys_pb.js";
import { AuditService } from "../gen/agentgateway/admin/v1/audit_pb.js";
import { EnrollmentTokenService } from "../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { auditRecordHash, GENESIS_HASH } from "../client/protocol/audit-chain.js";
import { secretFingerprint } from "../client/protocol/secrets.js";
import { gatewayClient, register } from "../agent/lib/direct.js";
import { SERVED_FILES } from "../server/app/routes.js";
import { declaredAccess } from "../server/identity/access-policy.js";
import { createTenant, enrollAgent, newIdentity } from "./support/agents.js";
import { expectCode } from "./support/expect-code.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";

let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway();
});

afterAll(async () => {
  await gw?.stop();
});

async function keyWithRole(role: Role): Promise<string> {
  const { secret } = await gw.admin(ApiKeyService).createApiKey({ name: `${Role[role]} key`, role });
  return secret;
}

describe("operator API keys and roles", () => {
  it("refuses admin calls without a key or with an unknown one", async () => {
    await expectCode(gw.admin(EnrollmentTokenService, "").listEnrollmentTokens({}), Code.Unauthenticated, /missing/);
    await expectCode(gw.admin(EnrollmentTokenService, `agwk_${"C".repeat(43)}`).listEnrollmentTokens({}), Code.Unauthenticated, /not valid/);
  });

  it("lets a viewer read but not change, and an editor manage tokens but not keys or audit", async () => {
    const viewer = await keyWithRole(Role.VIEWER);
    const editor = await keyWithRole(Role.EDITOR);
    await gw.admin(EnrollmentTokenService, viewer).listEnrollmentTokens({});
    await expectCode(gw.admin(EnrollmentTokenService, viewer).createEnrollmentToken({}), Code.PermissionDenied, /needs role editor/);
    await gw.admin(EnrollmentTokenService, editor).createEnrollmentToken({});
    await expectCode(gw.admin(ApiKeyService, editor).createApiKey({ name: "x", role: Role.ADMIN }), Code.PermissionDenied, /needs role admin/);
    await expectCode(gw.admin(AuditService, editor).listAuditEvents({}), Code.PermissionDenied);
    await expectCode(gw.admin(AuditService, viewer).verifyAuditChain({}), Code.PermissionDenied, /AuditService\/VerifyAuditChain needs role admin; this key has role viewer/);
    const me = await gw.admin(ApiKeyService, viewer).whoAmI({});
    expect(me.key?.role).toBe(Role.VIEWER);
  });

  it("refuses a revoked key at once, and a key cannot revoke itself", async () => {
    const editor = await keyWithRole(Role.EDITOR);
    const me = await gw.admin(ApiKeyService, editor).whoAmI({});
    const adminMe = await gw.admin(ApiKeyService).whoAmI({});
    await expectCode(gw.admin(ApiKeyService).revokeApiKey({ id: adminMe.key?.id ?? "" }), Code.FailedPrecondition, /itself/);
    await gw.admin(ApiKeyService).revokeApiKey({ id: me.key?.id ?? "" });
    await expectCode(gw.admin(EnrollmentTokenService, editor).listEnrollmentTokens({}), Code.Unauthenticated);
    const { keys } = await gw.admin(ApiKeyService).listApiKeys({ includeRevoked: true });
    expect(keys.find((k) => k.id === me.key?.id)?.revokedAt).toBeDefined();
    expect(JSON.stringify(keys, (_k, v) => (typeof v === "bigint" ? String(v) : v))).not.toContain(editor);
  });
});

/** Calls any method of a served service with an empty request, authenticated with `key` ("" = none). */
async function callWith(service: DescService, method: DescMethod, key: string): Promise<void> {
  const client = gw.admin(service, key) as unknown as Record<string, (input: unknown) => unknown>;
  const call = client[method.localName];
  if (!call) throw new Error(`no client method for ${method.name}`);
  if (method.methodKind === "unary") {
    await call({});
    return;
  }
  const input = method.methodKind === "bidi_streaming" || method.methodKind === "client_streaming" ? (async function* () {})() : {};
  const output = call(input);
  if (method.methodKind === "client_streaming") {
    await output;
    return;
  }
  for await (const _ of output as AsyncIterable<unknown>) break;
}

describe("roles come from the access option of each RPC", () => {
  const served = SERVED_FILES.flatMap((file) => file.services).flatMap((service) => service.methods.map((method) => ({ service, method, access: declaredAccess(method) })));

  it("refuses every operator RPC without a key, and every one above viewer to a viewer key", async () => {
    const viewer = await keyWithRole(Role.VIEWER);
    const editor = await keyWithRole(Role.EDITOR);
    const operatorRpcs = served.filter(({ access }) => access.caller === "operator");
    expect(operatorRpcs.length).toBeGreaterThan(25);
    for (const { service, method, access } of operatorRpcs) {
      if (access.caller !== "operator") continue;
      const name = `${service.typeName}/${method.name}`;
      await expectCode(callWith(service, method, ""), Code.Unauthenticated, /missing operator API key/);
      if (access.role !== "viewer") await expectCode(callWith(service, method, viewer), Code.PermissionDenied, new RegExp(`^${name} needs role ${access.role}; this key has role viewer$`));
      if (access.role === "admin") await expectCode(callWith(service, method, editor), Code.PermissionDenied, /this key has role editor$/);
    }
  });

  it("refuses an operator key on every agent RPC: only a session identifies an agent", async () => {
    const agentRpcs = served.filter(({ access }) => access.caller === "agent");
    expect(agentRpcs.map(({ method }) => method.name)).toEqual(["UploadTelemetry", "UploadEvents", "UploadHeartbeat", "ControlStream", "IssueAgentCertificate"]);
    for (const { service, method } of agentRpcs) {
      await expectCode(callWith(service, method, gw.adminKey), Code.Unauthenticated, /session token/);
      await expectCode(callWith(service, method, ""), Code.Unauthenticated, /session token/);
    }
  });
});

describe("tenancy", () => {
  it("keeps tenants apart: another tenant's operator cannot see or change an agent", async () => {
    const other = await createTenant(gw, "other-tenant");
    const agent = await enrollAgent(gw);
    const foreign = gw.admin(AgentService, other.adminKey);
    await expectCode(foreign.getAgent({ id: agent.registration.agentId }), Code.NotFound);
    await expectCode(foreign.revokeAgent({ id: agent.registration.agentId, reason: "x" }), Code.NotFound);
    const { agents } = await foreign.listAgents({});
    expect(agents).toHaveLength(0);
  });

  it("puts an agent in the tenant of the token it redeemed", async () => {
    const other = await createTenant(gw, "tenant-b");
    const { secret } = await gw.admin(EnrollmentTokenService, other.adminKey).createEnrollmentToken({});
    const reg = await register(gatewayClient(gw.transport), { token: secret, identity: newIdentity(), name: "b-agent" });
    expect(reg.tenantId).toBe(other.tenantId);
    await expectCode(gw.admin(AgentService).getAgent({ id: reg.agentId }), Code.NotFound);
  });
});

describe("failed operator authentications", () => {
  it("are limited per source: past the budget even a valid key is refused, then admitted again", async () => {
    const limited = await startTestGateway({ adminAuthFailureRate: "2/s:3" });
    try {
      for (let i = 0; i < 3; i++) await expectCode(limited.admin(ApiKeyService, `agwk_${"A".repeat(43)}`).whoAmI({}), Code.Unauthenticated);
      await expectCode(limited.admin(ApiKeyService, `agwk_${"B".repeat(43)}`).whoAmI({}), Code.ResourceExhausted, /retry after \d+ s/);
      await expectCode(limited.admin(ApiKeyService).whoAmI({}), Code.ResourceExhausted, /failed authentications/);
      await expect.poll(async () => (await limited.admin(ApiKeyService).whoAmI({}).then(() => "ok", (e) => String(e))), { timeout: 5_000, interval: 200 }).toBe("ok");
    } finally {
      await limited.stop();
    }
  });
});

describe("last use of a key", () => {
  it("is recorded when a key authenticates, and shown in the listing", async () => {
    const { secret, key } = await gw.admin(ApiKeyService).createApiKey({ name: "used", role: Role.VIEWER });
    const listed = async () => (await gw.admin(ApiKeyService).listApiKeys({})).keys.find((k) => k.id === key?.id);
    expect((await listed())?.lastUsedAt).toBeUndefined();
    await gw.admin(ApiKeyService, secret).whoAmI({});
    await expect.poll(async () => (await listed())?.lastUsedAt?.seconds ?? 0n, { timeout: 5_000 }).toBeGreaterThan(0n);
  });
});

describe("key listings", () => {
  it("show a fingerprint of each key, never characters of the key itself (the bootstrap key included)", async () => {
    const { secret } = await gw.admin(ApiKeyService).createApiKey({ name: "listed", role: Role.VIEWER });
    const { keys: apiKeys } = await gw.admin(ApiKeyService).listApiKeys({});
    const shown = apiKeys.map((k) => k.displayPrefix);
    expect(shown).toContain(secretFingerprint("apiKey", gw.adminKey));
    expect(shown).toContain(secretFingerprint("apiKey", secret));
    for (const key of [gw.adminKey, secret.slice(5)]) {
      for (const p of shown) expect(p).not.toContain(key.slice(0, 4));
    }
  });
});

describe("audit", () => {
  it("records every state change in a hash chain that verifies", async () => {
    const agent = await enrollAgent(gw, "audited", { requiresApproval: true });
    await gw.admin(AgentService).revokeAgent({ id: agent.registration.agentId, reason: "test" });
    const { events } = await gw.admin(AuditService).listAuditEvents({ pageSize: 1000 });
    const actions = events.map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(["tenant.created", "enrollment_token.created", "agent.registered", "agent.approved", "agent.revoked"]));
    expect(events.map((e) => Number(e.seq))).toEqual(events.map((_, i) => i + 1));
    const verdict = await gw.admin(AuditService).verifyAuditChain({});
    expect(verdict.ok).toBe(true);
    expect(Number(verdict.checked)).toBe(events.length);
  });

  it("exports a chain that a client recomputes from the wire alone: tenant id, Struct data, timestamps", async () => {
    const me = await gw.admin(ApiKeyService).whoAmI({});
    const { events } = await gw.admin(AuditService).listAuditEvents({ pageSize: 1000 });
    expect(events.length).toBeGreaterThan(3);
    let prev: Uint8Array = GENESIS_HASH;
    for (const e of events) {
      expect(e.tenantId).toBe(me.tenantId);
      expect(Buffer.from(e.prevHash).equals(Buffer.from(prev))).toBe(true);
      const hash = auditRecordHash({
        tenantId: e.tenantId,
        seq: Number(e.seq),
        actor: e.actor,
        action: e.action,
        target: e.target,
        data: e.data ?? {},
        createdAt: timestampDate(e.createdAt!),
        prevHash: e.prevHash,
      });
      expect(Buffer.from(hash).toString("hex"), `record ${e.seq}`).toBe(Buffer.from(e.hash).toString("hex"));
      prev = e.hash;
    }
  });

  it("detects a tampered record", async () => {
    const { db } = gw.gateway.context.database;
    const me = await gw.admin(ApiKeyService).whoAmI({});
    await db.updateTable("audit_events").set({ action: "agent.forged" }).where("tenant_id", "=", me.tenantId).where("seq", "=", 2).execute();
    const verdict = await gw.admin(AuditService).verifyAuditChain({});
    expect(verdict.ok).toBe(false);
    expect(Number(verdict.firstBadSeq)).toBe(2);
  });
});
