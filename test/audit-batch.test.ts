import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditService } from "../gen/agentgateway/admin/v1/audit_pb.js";
import { gatewayClient, withSession } from "../agent/lib/direct.js";
import { appendAuditBatch } from "../server/audit/audit-log.js";
import { verifyAuditChain } from "../server/audit/verify.js";
import { enrollAgent } from "./support/agents.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";
import { createTenantViaProvider, enrollInto } from "./support/tenants.js";

// appendAuditBatch writes many records with three statements per tenant (so the tenant's audit
// row lock, which every audited change waits for, is held briefly). What it must keep: each
// tenant's chain links record to record, and sequence numbers are contiguous per tenant.

let gw: TestGateway;
beforeAll(async () => {
  gw = await startTestGateway();
});
afterAll(async () => {
  await gw?.stop();
});

const tenantIdOfDefault = async () => (await gw.gateway.context.database.db.selectFrom("tenants").select("id").orderBy("created_at").executeTakeFirstOrThrow()).id;

describe("appendAuditBatch", () => {
  it("chains interleaved entries of two tenants, each in order with contiguous sequence numbers", async () => {
    const a = await tenantIdOfDefault();
    const b = (await createTenantViaProvider(gw, "audit-batch-b")).tenantId;
    const db = gw.gateway.context.database.db;
    const entry = (tenantId: string, n: number) => ({ tenantId, actor: { kind: "system" as const }, action: "test.batch", target: `test:${n}`, data: { n } });
    const seqs = await db.transaction().execute((trx) => appendAuditBatch(trx, [entry(a, 1), entry(b, 2), entry(a, 3), entry(b, 4), entry(a, 5)]));
    const [a1, b2, a3, b4, a5] = seqs as [number, number, number, number, number];
    expect([a3 - a1, a5 - a3, b4 - b2]).toEqual([1, 1, 1]);
    for (const tenantId of [a, b]) expect(await verifyAuditChain(db, tenantId)).toMatchObject({ ok: true });
    // Another append after the batch links to the batch's last record.
    await db.transaction().execute((trx) => appendAuditBatch(trx, [entry(a, 6)]));
    expect(await verifyAuditChain(db, a)).toMatchObject({ ok: true });
    const listed = await gw.admin(AuditService).listAuditEvents({ action: "test.batch", pageSize: 100 });
    expect(listed.events.map((e) => e.target)).toEqual(expect.arrayContaining(["test:1", "test:3", "test:5", "test:6"]));
    expect(listed.events.map((e) => e.target)).not.toContain("test:2");
  });

  it("the liveness sweeper records a batch of transitions of two tenants in one run, and both chains verify", async () => {
    const other = await createTenantViaProvider(gw, "audit-batch-sweep");
    const agents = [await enrollAgent(gw), await enrollAgent(gw), await enrollAgent(gw), await enrollInto(gw, other.adminKey), await enrollInto(gw, other.adminKey)];
    const client = gatewayClient(gw.transport);
    for (const agent of agents) await client.uploadHeartbeat({ agentVersion: "1.0.0" }, withSession(agent.session));
    const app = gw.gateway.context;
    await app.heartbeats.flush();
    const result = await app.liveness.sweep(new Date(Date.now() + 1000));
    const ours = new Set(agents.map((x) => x.registration.agentId));
    expect(result.transitions.filter((t) => ours.has(t.agentId)).map((t) => t.to)).toEqual(["ONLINE", "ONLINE", "ONLINE", "ONLINE", "ONLINE"]);
    for (const tenantId of [await tenantIdOfDefault(), other.tenantId]) expect(await verifyAuditChain(app.database.db, tenantId)).toMatchObject({ ok: true });
  });
});
