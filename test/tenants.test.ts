// The provider plane (issue 14 item 1): the system key, TenantService, suspension (calls and
// open streams, on every replica), deletion of empty tenants only, and the provider audit chain.
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { ApiKeyService } from "../gen/agentgateway/admin/v1/api_keys_pb.js";
import { AuditService } from "../gen/agentgateway/admin/v1/audit_pb.js";
import { EnrollmentTokenService } from "../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { ReleaseKeyService } from "../gen/agentgateway/admin/v1/release_keys_pb.js";
import { ProviderAuditService, TenantService, TenantState } from "../gen/agentgateway/provider/v1/tenants_pb.js";
import { gatewayClient, handshake, register, withSession } from "../agent/lib/direct.js";
import { auditRecordHash, GENESIS_HASH } from "../client/protocol/audit-chain.js";
import { generateKeyPair } from "../client/protocol/ed25519.js";
import { parseSecret } from "../client/protocol/secrets.js";
import { Reason, reasonOf } from "../client/reasons.js";
import { newIdentity } from "./support/agents.js";
import { expectCode } from "./support/expect-code.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";
import { openStream } from "./support/stream.js";
import { createTenantViaProvider, enrollInto } from "./support/tenants.js";

let database: TestDatabase;
let gw: TestGateway;
let replica: TestGateway;

beforeAll(async () => {
  database = await createTestDatabase();
  gw = await startTestGateway({ heartbeatFlushInterval: "100ms" }, database);
  // A second replica on the same PostgreSQL: suspension must reach its calls and streams too.
  replica = await startTestGateway({}, database);
}, 60_000);

afterAll(async () => {
  await replica?.gateway.stop();
  await gw?.gateway.stop();
  await database?.drop();
});

async function reason(call: Promise<unknown>, code: Code): Promise<string | undefined> {
  const err = await expectCode(call, code);
  return reasonOf(err);
}

describe("the system key", () => {
  it("is the only credential TenantService accepts", async () => {
    await expect(gw.admin(TenantService, gw.systemKey).listTenants({})).resolves.toBeDefined();
    expect(await reason(gw.admin(TenantService, gw.adminKey).listTenants({}), Code.PermissionDenied)).toBe(Reason.SYSTEM_KEY_REQUIRED);
    await expectCode(gw.admin(TenantService, `agwp_${"A".repeat(43)}`).listTenants({}), Code.Unauthenticated);
    await expectCode(gatewayClientless(), Code.Unauthenticated);
    await expectCode(gw.admin(ProviderAuditService, gw.adminKey).verifyProviderAuditChain({}), Code.PermissionDenied);
  });

  it("is refused on every tenant admin RPC: the provider is not an operator of any tenant", async () => {
    expect(await reason(gw.admin(ApiKeyService, gw.systemKey).whoAmI({}), Code.PermissionDenied)).toBe(Reason.SYSTEM_KEY_NOT_ALLOWED);
    expect(await reason(gw.admin(AgentService, gw.systemKey).listAgents({}), Code.PermissionDenied)).toBe(Reason.SYSTEM_KEY_NOT_ALLOWED);
    expect(await reason(gw.admin(AuditService, gw.systemKey).listAuditEvents({}), Code.PermissionDenied)).toBe(Reason.SYSTEM_KEY_NOT_ALLOWED);
  });

  it("is stored as a hash only", async () => {
    const rows = await gw.gateway.context.database.db.selectFrom("system_keys").selectAll().execute();
    expect(rows).toHaveLength(1);
    const text = JSON.stringify(rows, (_k, v) => (v instanceof Uint8Array || Buffer.isBuffer(v) ? Buffer.from(v).toString("latin1") : v));
    expect(text).not.toContain(gw.systemKey);
  });

  it("is minted on first start when none is configured, shaped agwp_…, and not again on the next start", async () => {
    const own = await createTestDatabase();
    try {
      const first = await startTestGateway({ bootstrapSystemKey: "" }, own);
      const minted = first.gateway.bootstrap.systemKey ?? "";
      expect(first.gateway.bootstrap.systemKeyGenerated).toBe(true);
      expect(parseSecret(minted, "systemKey")).toBe(true);
      await expect(first.admin(TenantService, minted).listTenants({})).resolves.toBeDefined();
      await first.gateway.stop();
      const second = await startTestGateway({ bootstrapSystemKey: "" }, own);
      expect(second.gateway.bootstrap.systemKey).toBeUndefined();
      await expect(second.admin(TenantService, minted).listTenants({})).resolves.toBeDefined();
      await second.gateway.stop();
    } finally {
      await own.drop();
    }
  });
});

function gatewayClientless(): Promise<unknown> {
  return gw.admin(TenantService, "").listTenants({});
}

describe("TenantService", () => {
  it("creates a tenant whose first admin key works in that tenant only, once per name", async () => {
    const acme = await createTenantViaProvider(gw, "acme");
    const me = await gw.admin(ApiKeyService, acme.adminKey).whoAmI({});
    expect(me.tenantId).toBe(acme.tenantId);
    expect(me.tenantName).toBe("acme");
    expect(me.key?.role).toBe(3);
    await expectCode(gw.admin(TenantService, gw.systemKey).createTenant({ name: "acme" }), Code.AlreadyExists);
    await expectCode(gw.admin(TenantService, gw.systemKey).createTenant({ name: "Not A Name" }), Code.InvalidArgument);
    const listed = await gw.admin(TenantService, gw.systemKey).listTenants({});
    expect(listed.tenants.map((t) => t.name)).toEqual(expect.arrayContaining(["default", "acme"]));
    const got = await gw.admin(TenantService, gw.systemKey).getTenant({ id: acme.tenantId });
    expect(got.tenant?.state).toBe(TenantState.ACTIVE);
    expect(got.usage?.activeApiKeys).toBe(1n);
    expect(got.usage?.auditRecords).toBe(2n);
    // The tenant's own chain shows what the provider did, and verifies.
    const events = await gw.admin(AuditService, acme.adminKey).listAuditEvents({});
    expect(events.events.map((e) => e.action)).toEqual(["tenant.created", "api_key.created"]);
    expect((await gw.admin(AuditService, acme.adminKey).verifyAuditChain({})).ok).toBe(true);
  });

  it("pages through tenants", async () => {
    for (const n of ["page-a", "page-b", "page-c"]) await createTenantViaProvider(gw, n);
    const seen: string[] = [];
    let pageToken = "";
    for (let i = 0; i < 20; i++) {
      const page = await gw.admin(TenantService, gw.systemKey).listTenants({ pageSize: 2, pageToken });
      seen.push(...page.tenants.map((t) => t.name));
      pageToken = page.nextPageToken;
      if (!pageToken) break;
    }
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual(expect.arrayContaining(["default", "page-a", "page-b", "page-c"]));
  });

  it("answers NotFound for an unknown tenant", async () => {
    const id = crypto.randomUUID();
    await expectCode(gw.admin(TenantService, gw.systemKey).getTenant({ id }), Code.NotFound);
    await expectCode(gw.admin(TenantService, gw.systemKey).suspendTenant({ id }), Code.NotFound);
    await expectCode(gw.admin(TenantService, gw.systemKey).resumeTenant({ id }), Code.NotFound);
    await expectCode(gw.admin(TenantService, gw.systemKey).deleteTenant({ id }), Code.NotFound);
  });
});

describe("suspension", () => {
  it("refuses the tenant's operators and agents with TENANT_SUSPENDED, ends their streams on both replicas, and leaves other tenants alone", async () => {
    const sus = await createTenantViaProvider(gw, "suspendable");
    const other = await createTenantViaProvider(gw, "bystander");
    const agent = await enrollInto(gw, sus.adminKey, "sus-agent");
    const otherAgent = await enrollInto(gw, other.adminKey, "other-agent");
    const { secret: spareToken } = await gw.admin(EnrollmentTokenService, sus.adminKey).createEnrollmentToken({ maxUses: 1 });
    // Streams of the tenant on each replica: a ControlStream on the replica, WatchAgents here.
    const onReplica = gatewayClient(replica.transport);
    const stream = openStream(onReplica, agent.session);
    expect((await stream.next()).kind.case).toBe("welcome");
    const watchAbort = new AbortController();
    const watched = (async () => {
      try {
        for await (const _ of gw.admin(AgentService, sus.adminKey).watchAgents({}, { signal: watchAbort.signal })) {
          // keep reading until the gateway ends the stream
        }
        return undefined;
      } catch (err) {
        return err;
      }
    })();
    const otherStream = openStream(gatewayClient(replica.transport), otherAgent.session);
    expect((await otherStream.next()).kind.case).toBe("welcome");

    const suspended = await gw.admin(TenantService, gw.systemKey).suspendTenant({ id: sus.tenantId, reason: "unpaid invoice" });
    expect(suspended.tenant?.state).toBe(TenantState.SUSPENDED);
    expect(suspended.tenant?.suspendReason).toBe("unpaid invoice");

    const streamErr = ConnectError.from(await stream.ended);
    expect(Code[streamErr.code]).toBe("PermissionDenied");
    expect(reasonOf(streamErr)).toBe(Reason.TENANT_SUSPENDED);
    const watchErr = ConnectError.from(await watched);
    expect(reasonOf(watchErr)).toBe(Reason.TENANT_SUSPENDED);

    // Calls on this replica are refused at once; on the other as soon as the bus got there.
    expect(await reason(gw.admin(ApiKeyService, sus.adminKey).whoAmI({}), Code.PermissionDenied)).toBe(Reason.TENANT_SUSPENDED);
    expect(await reason(gatewayClient(gw.transport).uploadHeartbeat({ agentVersion: "1" }, withSession(agent.session)), Code.PermissionDenied)).toBe(Reason.TENANT_SUSPENDED);
    await expect.poll(async () => reasonOf(await replica.admin(AgentService, sus.adminKey).listAgents({}).then(() => undefined, (e) => e)), { timeout: 5_000 }).toBe(Reason.TENANT_SUSPENDED);
    // A new handshake and a registration with the tenant's token are refused; the token keeps its use.
    expect(await reason(handshake(gatewayClient(gw.transport), agent.registration.agentId, agent.identity), Code.PermissionDenied)).toBe(Reason.TENANT_SUSPENDED);
    expect(await reason(register(gatewayClient(gw.transport), { token: spareToken, identity: newIdentity(), name: "late" }), Code.PermissionDenied)).toBe(Reason.TENANT_SUSPENDED);

    // The other tenant did not notice.
    await expect(gw.admin(ApiKeyService, other.adminKey).whoAmI({})).resolves.toBeDefined();
    await gatewayClient(replica.transport).uploadHeartbeat({ agentVersion: "1" }, withSession(otherAgent.session));
    // Its stream still delivers: revoking a second agent of it sends the first a PeerRevoked.
    const peer = await enrollInto(gw, other.adminKey, "other-peer");
    await gw.admin(AgentService, other.adminKey).revokeAgent({ id: peer.registration.agentId, reason: "test" });
    expect((await otherStream.next()).kind.case).toBe("command");
    otherStream.close();

    // Resume: everything works again, the spare token included.
    const resumed = await gw.admin(TenantService, gw.systemKey).resumeTenant({ id: sus.tenantId });
    expect(resumed.tenant?.state).toBe(TenantState.ACTIVE);
    await expect(gw.admin(ApiKeyService, sus.adminKey).whoAmI({})).resolves.toBeDefined();
    await expect.poll(() => replica.admin(AgentService, sus.adminKey).listAgents({}).then(() => "ok", (e) => String(e)), { timeout: 5_000 }).toBe("ok");
    const session = await handshake(gatewayClient(gw.transport), agent.registration.agentId, agent.identity);
    await gatewayClient(gw.transport).uploadHeartbeat({ agentVersion: "1" }, withSession(session));
    await register(gatewayClient(gw.transport), { token: spareToken, identity: newIdentity(), name: "late" });
    watchAbort.abort();

    const actions = (await gw.admin(AuditService, sus.adminKey).listAuditEvents({})).events.map((e) => e.action);
    expect(actions).toContain("tenant.suspended");
    expect(actions).toContain("tenant.resumed");
  });

  it("refuses a stream opened while the tenant is suspended, before it is served", async () => {
    const t = await createTenantViaProvider(gw, "suspended-before");
    const agent = await enrollInto(gw, t.adminKey);
    await gw.admin(TenantService, gw.systemKey).suspendTenant({ id: t.tenantId, reason: "" });
    const stream = openStream(gatewayClient(gw.transport), agent.session);
    expect(reasonOf(await stream.ended)).toBe(Reason.TENANT_SUSPENDED);
  });
});

describe("deletion", () => {
  it("deletes only a tenant that never had an agent or a rollout, with its keys, tokens, release keys and chain", async () => {
    const busy = await createTenantViaProvider(gw, "has-agents");
    await enrollInto(gw, busy.adminKey);
    await expectCode(gw.admin(TenantService, gw.systemKey).deleteTenant({ id: busy.tenantId }), Code.FailedPrecondition, /suspend it instead/);
    await expect(gw.admin(ApiKeyService, busy.adminKey).whoAmI({})).resolves.toBeDefined();

    const empty = await createTenantViaProvider(gw, "empty");
    await gw.admin(EnrollmentTokenService, empty.adminKey).createEnrollmentToken({});
    await gw.admin(ReleaseKeyService, empty.adminKey).registerReleaseKey({ name: "k", publicKey: generateKeyPair().publicKey });
    await gw.admin(TenantService, gw.systemKey).deleteTenant({ id: empty.tenantId });
    await expectCode(gw.admin(TenantService, gw.systemKey).getTenant({ id: empty.tenantId }), Code.NotFound);
    await expectCode(gw.admin(ApiKeyService, empty.adminKey).whoAmI({}), Code.Unauthenticated);
    const left = await gw.gateway.context.database.db.selectFrom("audit_events").select("seq").where("tenant_id", "=", empty.tenantId).execute();
    expect(left).toEqual([]);
    // The name is free again.
    await createTenantViaProvider(gw, "empty");
  });
});

describe("the provider audit chain", () => {
  it("records every provider action, verifies, and is recomputable from ListProviderAuditEvents alone", async () => {
    const audit = gw.admin(ProviderAuditService, gw.systemKey);
    const { events } = await audit.listProviderAuditEvents({ pageSize: 1000 });
    const actions = events.map((e) => e.action);
    expect(actions.slice(0, 2).sort()).toEqual(["system_key.created", "tenant.created"]);
    for (const a of ["tenant.suspended", "tenant.resumed", "tenant.deleted"]) expect(actions).toContain(a);
    const deleted = events.find((e) => e.action === "tenant.deleted");
    expect(deleted?.data?.audit_records).toBeGreaterThan(0);
    let prev: Uint8Array = GENESIS_HASH;
    for (const e of events) {
      expect(e.tenantId).toBe("");
      expect(Buffer.from(e.prevHash).equals(Buffer.from(prev))).toBe(true);
      const hash = auditRecordHash({
        tenantId: "",
        seq: Number(e.seq),
        actor: e.actor,
        action: e.action,
        target: e.target,
        data: (e.data ?? {}) as Record<string, unknown>,
        createdAt: new Date(Number(e.createdAt?.seconds ?? 0n) * 1000 + Math.round((e.createdAt?.nanos ?? 0) / 1e6)),
        prevHash: prev,
      });
      expect(Buffer.from(hash).equals(Buffer.from(e.hash))).toBe(true);
      prev = hash;
    }
    const verified = await audit.verifyProviderAuditChain({});
    expect(verified.ok).toBe(true);
    expect(verified.checked).toBe(BigInt(events.length));
  });

  it("detects a tampered record", async () => {
    const db = gw.gateway.context.database.db;
    const { events } = await gw.admin(ProviderAuditService, gw.systemKey).listProviderAuditEvents({});
    const victim = events.find((e) => e.action === "tenant.suspended");
    await db.updateTable("provider_audit_events").set({ target: "tenant:someone-else" }).where("seq", "=", Number(victim?.seq)).execute();
    try {
      const verified = await gw.admin(ProviderAuditService, gw.systemKey).verifyProviderAuditChain({});
      expect(verified.ok).toBe(false);
      expect(verified.firstBadSeq).toBe(victim?.seq);
    } finally {
      await db.updateTable("provider_audit_events").set({ target: victim?.target ?? "" }).where("seq", "=", Number(victim?.seq)).execute();
    }
  });
});
