import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { compressionGzip, createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { create } from "@bufbuild/protobuf";
import { type Timestamp, TimestampSchema, timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { AgentService, Liveness } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { AuditService } from "../gen/agentgateway/admin/v1/audit_pb.js";
import { EnrollmentTokenService } from "../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { AgentStatus, EventSeverity } from "../gen/agentgateway/v1/ingest_pb.js";
import { gatewayClient, type GatewayClient, handshake, register, withSession } from "../agent/lib/direct.js";
import { tryLockSweep } from "../server/agents/agent-presence-store.js";
import { LivenessSweeper } from "../server/ingest/liveness-sweeper.js";
import { enrollAgent, type EnrolledAgent, newIdentity } from "./support/agents.js";
import { createTestDatabase } from "./support/database.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";

const BASE_MS = Date.UTC(2024, 0, 1);

/** `n` points with ids `${prefix}-${i}`, one second apart, newest last. */
function points(prefix: string, n: number, name = "cpu.utilization") {
  return Array.from({ length: n }, (_, i) => ({
    id: `${prefix}-${i}`,
    name,
    labels: { core: String(i % 4) },
    value: i / 10,
    observedAt: timestampFromMs(BASE_MS + i * 1000),
  }));
}

function event(id: string, occurredAt: Timestamp, payload = new Uint8Array()) {
  return { id, type: "process.crashed", severity: EventSeverity.ERROR, message: `event ${id}`, attributes: { pid: "42" }, payload, occurredAt };
}

/** The Connect error a call rejected with (fails the test if it resolved). */
async function rejection(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

describe("ingest", () => {
  let gw: TestGateway;
  let client: GatewayClient;
  let agent: EnrolledAgent;

  beforeAll(async () => {
    // Timers far apart: the tests flush and sweep explicitly, so nothing depends on timing.
    gw = await startTestGateway({ heartbeatFlushInterval: "1h", livenessSweepInterval: "1h" });
    client = gatewayClient(gw.transport);
    agent = await enrollAgent(gw);
  });
  afterAll(async () => {
    await gw?.stop();
  });

  describe("UploadTelemetry", () => {
    it("counts a retried batch once: accepted N, then duplicates N", async () => {
      const batch = points("retry", 500);
      expect(await client.uploadTelemetry({ points: batch }, withSession(agent.session))).toMatchObject({ accepted: 500, duplicates: 0 });
      expect(await client.uploadTelemetry({ points: batch }, withSession(agent.session))).toMatchObject({ accepted: 0, duplicates: 500 });
      // A retry that overlaps the first batch only stores the new points.
      const overlap = [...batch.slice(0, 10), ...points("retry-more", 5)];
      expect(await client.uploadTelemetry({ points: overlap }, withSession(agent.session))).toMatchObject({ accepted: 5, duplicates: 10 });
    });

    it("counts an id repeated inside one batch as a duplicate and keeps the first", async () => {
      const [first, second] = points("in-batch", 2);
      const res = await client.uploadTelemetry({ points: [first!, second!, { ...first!, value: 99 }] }, withSession(agent.session));
      expect(res).toMatchObject({ accepted: 2, duplicates: 1 });
      const stored = await gw.admin(AgentService).listAgentTelemetry({ agentId: agent.registration.agentId, pageSize: 5000 });
      expect(stored.points.find((p) => p.id === first!.id)?.value).toBe(first!.value);
    });

    it("stores concurrent identical uploads once and counts every point exactly once as accepted across them", async () => {
      const same = await enrollAgent(gw);
      const batch = points("concurrent", 200);
      const results = await Promise.all(Array.from({ length: 6 }, () => client.uploadTelemetry({ points: batch }, withSession(same.session))));
      expect(results.reduce((n, r) => n + r.accepted, 0)).toBe(200);
      for (const r of results) expect(r.accepted + r.duplicates).toBe(200);
      const stored = await gw.admin(AgentService).listAgentTelemetry({ agentId: same.registration.agentId, pageSize: 1000 });
      expect(stored.points.map((p) => p.id).sort()).toEqual(batch.map((p) => p.id).sort());
    });

    it("counts a point repeated in a later batch as a duplicate, also mixed with new points and repeats inside the batch", async () => {
      const [a, b, c] = points("across", 3);
      expect(await client.uploadTelemetry({ points: [a!, b!] }, withSession(agent.session))).toMatchObject({ accepted: 2, duplicates: 0 });
      const res = await client.uploadTelemetry({ points: [b!, c!, { ...c!, value: 7 }, a!] }, withSession(agent.session));
      expect(res).toMatchObject({ accepted: 1, duplicates: 3 });
    });

    it("keeps ids per agent: another agent may reuse them", async () => {
      const other = await enrollAgent(gw);
      const res = await client.uploadTelemetry({ points: points("retry", 3) }, withSession(other.session));
      expect(res).toMatchObject({ accepted: 3, duplicates: 0 });
    });

    it("refuses a call without a session, or with a garbage one, as UNAUTHENTICATED", async () => {
      const batch = { points: points("unauth", 1) };
      const none = await rejection(client.uploadTelemetry(batch));
      expect(none.code).toBe(Code.Unauthenticated);
      expect(none.rawMessage).toBe("missing or malformed session token: send Authorization: Bearer <session token>");
      const garbage = await rejection(client.uploadTelemetry(batch, withSession({ token: "not-a-session" })));
      expect(garbage.code).toBe(Code.Unauthenticated);
      const forged = await rejection(client.uploadTelemetry(batch, withSession({ token: `${agent.session.token.slice(0, -4)}AAAA` })));
      expect(forged.code).toBe(Code.Unauthenticated);
      const events = await rejection(client.uploadEvents({ events: [event("unauth", timestampFromMs(BASE_MS))] }));
      expect(events.code).toBe(Code.Unauthenticated);
    });

    it("refuses 1001 points with INVALID_ARGUMENT naming the field", async () => {
      const err = await rejection(client.uploadTelemetry({ points: points("too-many", 1001) }, withSession(agent.session)));
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toBe("points: must contain no more than 1000 item(s) [repeated.max_items]");
    });

    it("refuses NUL characters and timestamps out of range with INVALID_ARGUMENT naming the item", async () => {
      const [p] = points("bad", 1);
      const nul = await rejection(client.uploadTelemetry({ points: [p!, { ...p!, id: "bad-nul", labels: { k: "a\u0000b" } }] }, withSession(agent.session)));
      expect(nul.code).toBe(Code.InvalidArgument);
      expect(nul.rawMessage).toBe('points[1].labels["k"]: must not contain NUL characters');
      const far = create(TimestampSchema, { seconds: 253_402_300_800n, nanos: 0 });
      const range = await rejection(client.uploadTelemetry({ points: [{ ...p!, observedAt: far }] }, withSession(agent.session)));
      expect(range.code).toBe(Code.InvalidArgument);
      expect(range.rawMessage).toBe("points[0].observed_at: must be between 0001-01-01 and 9999-12-31");
    });
  });

  describe("UploadEvents", () => {
    it("stores events once, with payloads, and counts retries as duplicates", async () => {
      const payload = new Uint8Array(1024 * 1024).map((_, i) => i % 251);
      const batch = [event("ev-1", timestampFromMs(BASE_MS + 1), payload), event("ev-2", timestampFromMs(BASE_MS + 2)), event("ev-1", timestampFromMs(BASE_MS + 3))];
      expect(await client.uploadEvents({ events: batch }, withSession(agent.session))).toMatchObject({ accepted: 2, duplicates: 1 });
      expect(await client.uploadEvents({ events: batch }, withSession(agent.session))).toMatchObject({ accepted: 0, duplicates: 3 });
      const res = await gw.admin(AgentService).listAgentEvents({ agentId: agent.registration.agentId });
      const stored = res.events.find((e) => e.event?.id === "ev-1");
      expect(Buffer.from(stored?.event?.payload ?? []).equals(payload)).toBe(true);
      expect(stored?.event?.severity).toBe(EventSeverity.ERROR);
      expect(stored?.event?.attributes).toEqual({ pid: "42" });
      expect(stored?.receivedAt).toBeDefined();
    });

    it("refuses a payload of 1 MiB + 1 byte with INVALID_ARGUMENT", async () => {
      const err = await rejection(
        client.uploadEvents({ events: [event("too-big", timestampFromMs(BASE_MS), new Uint8Array(1024 * 1024 + 1))] }, withSession(agent.session)),
      );
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toBe("events[0].payload: must be at most 1048576 bytes [bytes.max_len]");
    });
  });

  describe("admin reads", () => {
    let reader: EnrolledAgent;
    beforeAll(async () => {
      reader = await enrollAgent(gw);
      await client.uploadTelemetry({ points: [...points("cpu", 25), ...points("mem", 5, "mem.used")] }, withSession(reader.session));
    });

    it("pages through points newest first, without gaps or repeats", async () => {
      const admin = gw.admin(AgentService);
      const seen: string[] = [];
      let pageToken = "";
      let pages = 0;
      do {
        const page = await admin.listAgentTelemetry({ agentId: reader.registration.agentId, name: "cpu.utilization", pageSize: 10, pageToken });
        seen.push(...page.points.map((p) => p.id));
        pageToken = page.nextPageToken;
        pages++;
      } while (pageToken);
      expect(pages).toBe(3);
      expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => `cpu-${24 - i}`));
    });

    it("returns points exactly as uploaded, to the microsecond", async () => {
      const observedAt = create(TimestampSchema, { seconds: 1_700_000_000n, nanos: 123_456_789 });
      await client.uploadTelemetry({ points: [{ id: "exact", name: "exact.metric", labels: { a: "b", "x.y": "z" }, value: -1.5e-7, observedAt }] }, withSession(reader.session));
      const res = await gw.admin(AgentService).listAgentTelemetry({ agentId: reader.registration.agentId, name: "exact.metric" });
      expect(res.points).toHaveLength(1);
      expect(res.points[0]).toMatchObject({ id: "exact", name: "exact.metric", labels: { a: "b", "x.y": "z" }, value: -1.5e-7 });
      expect(res.points[0]?.observedAt).toMatchObject({ seconds: 1_700_000_000n, nanos: 123_456_000 });
    });

    it("keeps the ends of the Timestamp range, the epoch and the microsecond before it, for points and events", async () => {
      const instants = [
        { seconds: -62_135_596_800n, nanos: 0 }, // 0001-01-01T00:00:00Z
        { seconds: -62_135_596_800n, nanos: 1_000 },
        { seconds: -1n, nanos: 999_999_999 },
        { seconds: 0n, nanos: 0 },
        { seconds: 253_402_300_799n, nanos: 999_999_999 }, // 9999-12-31T23:59:59.999999999Z
      ].map((t) => create(TimestampSchema, t));
      const ends = await enrollAgent(gw);
      const pts = instants.map((observedAt, i) => ({ id: `end-${i}`, name: "range.end", labels: {}, value: i, observedAt }));
      expect(await client.uploadTelemetry({ points: pts }, withSession(ends.session))).toMatchObject({ accepted: 5, duplicates: 0 });
      expect(await client.uploadEvents({ events: instants.map((t, i) => event(`end-${i}`, t)) }, withSession(ends.session))).toMatchObject({ accepted: 5 });
      const want = instants.map((t) => ({ seconds: t.seconds, nanos: Math.floor(t.nanos / 1000) * 1000 })).reverse();
      const storedPoints = await gw.admin(AgentService).listAgentTelemetry({ agentId: ends.registration.agentId });
      expect(storedPoints.points.map((p) => ({ seconds: p.observedAt?.seconds, nanos: p.observedAt?.nanos }))).toEqual(want);
      const storedEvents = await gw.admin(AgentService).listAgentEvents({ agentId: ends.registration.agentId });
      expect(storedEvents.events.map((e) => ({ seconds: e.event?.occurredAt?.seconds, nanos: e.event?.occurredAt?.nanos }))).toEqual(want);
    });

    it("filters by time: since is inclusive, until exclusive", async () => {
      const res = await gw.admin(AgentService).listAgentTelemetry({
        agentId: reader.registration.agentId,
        since: timestampFromMs(BASE_MS + 2000),
        until: timestampFromMs(BASE_MS + 4000),
      });
      expect(res.points.map((p) => p.id).sort()).toEqual(["cpu-2", "cpu-3", "mem-2", "mem-3"]);
      expect(res.nextPageToken).toBe("");
    });

    it("pages through events newest first and stops a page early when payloads are large", async () => {
      const big = new Uint8Array(1024 * 1024);
      for (let i = 0; i < 5; i++) {
        await client.uploadEvents({ events: [event(`big-${i}`, timestampFromMs(BASE_MS + i), big)] }, withSession(reader.session));
      }
      const admin = gw.admin(AgentService);
      const first = await admin.listAgentEvents({ agentId: reader.registration.agentId, pageSize: 100 });
      // About 3.5 MiB per page (under gRPC's default 4 MiB): three 1 MiB payloads fit, the rest comes next.
      expect(first.events.map((e) => e.event?.id)).toEqual(["big-4", "big-3", "big-2"]);
      const second = await admin.listAgentEvents({ agentId: reader.registration.agentId, pageSize: 100, pageToken: first.nextPageToken });
      expect(second.events.map((e) => e.event?.id)).toEqual(["big-1", "big-0"]);
      expect(second.nextPageToken).toBe("");
      const ranged = await admin.listAgentEvents({ agentId: reader.registration.agentId, since: timestampFromMs(BASE_MS + 3) });
      expect(ranged.events.map((e) => e.event?.id)).toEqual(["big-4", "big-3"]);
    });

    it("refuses a tampered page token with INVALID_ARGUMENT", async () => {
      const err = await rejection(gw.admin(AgentService).listAgentTelemetry({ agentId: reader.registration.agentId, pageToken: "bm90LWpzb24" }));
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toContain("page_token");
    });

    it("answers NOT_FOUND for an unknown agent", async () => {
      const err = await rejection(gw.admin(AgentService).listAgentEvents({ agentId: randomUUID() }));
      expect(err.code).toBe(Code.NotFound);
    });

    it("keeps tenants apart: another tenant's key cannot read, and its agent's uploads stay its own", async () => {
      const db = gw.gateway.context.database.db;
      const tenantId = randomUUID();
      await db.insertInto("tenants").values({ id: tenantId, name: `other-${tenantId.slice(0, 8)}` }).execute();
      const { secret } = await gw.gateway.context.apiKeys.create(db, { tenantId, name: "other admin", role: "admin", createdBy: "test" });
      const otherAdmin = gw.admin(AgentService, secret);
      const err = await rejection(otherAdmin.listAgentTelemetry({ agentId: reader.registration.agentId }));
      expect(err.code).toBe(Code.NotFound);
      expect((await rejection(otherAdmin.listAgentEvents({ agentId: reader.registration.agentId }))).code).toBe(Code.NotFound);

      // An agent of the other tenant uploads the same point ids: stored under its own tenant.
      const token = (await gw.admin(EnrollmentTokenService, secret).createEnrollmentToken({ maxUses: 1 })).secret;
      const identity = newIdentity();
      const registration = await register(client, { token, identity, name: "other-agent" });
      expect(registration.tenantId).toBe(tenantId);
      const session = await handshake(client, registration.agentId, identity);
      expect(await client.uploadTelemetry({ points: points("cpu", 3) }, withSession(session))).toMatchObject({ accepted: 3, duplicates: 0 });
      expect((await otherAdmin.listAgentTelemetry({ agentId: registration.agentId })).points).toHaveLength(3);
      expect((await rejection(gw.admin(AgentService).listAgentTelemetry({ agentId: registration.agentId }))).code).toBe(Code.NotFound);
      const rows = await db.selectFrom("telemetry_points").select("tenant_id").distinct().where("agent_id", "=", registration.agentId).execute();
      expect(rows).toEqual([{ tenant_id: tenantId }]);
    });
  });

  describe("UploadHeartbeat", () => {
    it("coalesces in memory; after a flush GetAgent shows the version, the host and ONLINE", async () => {
      const hb = await enrollAgent(gw);
      const app = gw.gateway.context;
      const res = await client.uploadHeartbeat(
        { agentVersion: "1.4.2", status: AgentStatus.DEGRADED, uptime: { seconds: 3600n, nanos: 0 }, host: { hostname: "edge-7", os: "linux", arch: "arm64" } },
        withSession(hb.session),
      );
      expect(res.serverTime).toBeDefined();
      await client.uploadHeartbeat({}, withSession(hb.session));
      // Not written yet (the flush timer is an hour), but readable as "the version the agent reported".
      const before = await gw.admin(AgentService).getAgent({ id: hb.registration.agentId });
      expect(before.agent?.agentVersion).toBe("");
      expect(before.agent?.liveness).toBe(Liveness.OFFLINE);
      expect(await app.heartbeats.reportedVersion(hb.registration.agentId)).toBe("1.4.2");

      expect(await app.heartbeats.flush()).toBeGreaterThanOrEqual(1);
      const after = await gw.admin(AgentService).getAgent({ id: hb.registration.agentId });
      expect(after.agent?.agentVersion).toBe("1.4.2");
      expect(after.agent?.host).toMatchObject({ hostname: "edge-7", os: "linux", arch: "arm64" });
      expect(after.agent?.liveness).toBe(Liveness.ONLINE);
      // The agent's own view of its health is kept, not dropped.
      expect(after.agent?.reportedStatus).toBe(AgentStatus.DEGRADED);
      expect(after.agent?.uptime?.seconds).toBe(3600n);
      expect(after.agent?.lastSeenAt).toBeDefined();
      expect(await app.heartbeats.reportedVersion(hb.registration.agentId)).toBe("1.4.2");
    });

    it("needs a session", async () => {
      expect((await rejection(client.uploadHeartbeat({ agentVersion: "1.0.0" }))).code).toBe(Code.Unauthenticated);
    });
  });

  describe("liveness sweeper", () => {
    it("records OFFLINE → ONLINE → STALE → OFFLINE in the audit log, once each", async () => {
      const app = gw.gateway.context;
      const live = await enrollAgent(gw);
      await client.uploadHeartbeat({ agentVersion: "2.0.0" }, withSession(live.session));
      await app.heartbeats.flush();
      const seen = (await gw.admin(AgentService).getAgent({ id: live.registration.agentId })).agent?.lastSeenAt;
      expect(seen).toBeDefined();
      const seenMs = timestampDate(seen!).getTime();
      const { staleAfterMs, offlineAfterMs } = app.config;

      const steps: Array<[number, string]> = [
        [seenMs + 1, "ONLINE"],
        [seenMs + 2, ""], // nothing changed: no record
        [seenMs + staleAfterMs + 1, "STALE"],
        [seenMs + offlineAfterMs + 1, "OFFLINE"],
      ];
      for (const [at, expected] of steps) {
        const result = await app.liveness.sweep(new Date(at));
        expect(result.swept).toBe(true);
        const mine = result.transitions.filter((t) => t.agentId === live.registration.agentId).map((t) => t.to);
        expect(mine).toEqual(expected ? [expected] : []);
      }

      const audit = await gw.admin(AuditService).listAuditEvents({ action: "agent.liveness_changed", pageSize: 1000 });
      const records = audit.events.filter((e) => e.target === `agent:${live.registration.agentId}`);
      expect(records.map((r) => [r.actor, r.data?.from, r.data?.to])).toEqual([
        ["system", "OFFLINE", "ONLINE"],
        ["system", "ONLINE", "STALE"],
        ["system", "STALE", "OFFLINE"],
      ]);
      expect((await gw.admin(AuditService).verifyAuditChain({})).ok).toBe(true);
    });

    it("does not overlap: a second call joins the running sweep, and a held lock (another replica) skips it", async () => {
      const app = gw.gateway.context;
      const at = new Date();
      const [a, b] = [app.liveness.sweep(at), app.liveness.sweep(at)];
      expect(a).toBe(b);
      await a;
      await app.database.db.transaction().execute(async (trx) => {
        expect(await tryLockSweep(trx)).toBe(true);
        const skipped = await app.liveness.sweep(at);
        expect(skipped).toEqual({ swept: false, transitions: [], more: false });
      });
    });

    it("bounds the work of one run and leaves the rest for the next", async () => {
      const app = gw.gateway.context;
      const agents = [await enrollAgent(gw), await enrollAgent(gw), await enrollAgent(gw)];
      for (const a of agents) await client.uploadHeartbeat({}, withSession(a.session));
      await app.heartbeats.flush();
      const small = new LivenessSweeper(app.database.db, { intervalMs: 3_600_000, staleAfterMs: app.config.staleAfterMs, offlineAfterMs: app.config.offlineAfterMs, batchSize: 1, maxBatchesPerRun: 2 });
      const at = new Date(Date.now() + 1000);
      const first = await small.sweep(at);
      expect(first.transitions).toHaveLength(2);
      expect(first.more).toBe(true);
      const recorded = [...first.transitions];
      for (let run = 0; run < 100; run++) {
        const next = await small.sweep(at);
        recorded.push(...next.transitions);
        if (!next.more) break;
      }
      const ids = agents.map((a) => a.registration.agentId);
      expect(recorded.filter((t) => ids.includes(t.agentId)).map((t) => t.to)).toEqual(["ONLINE", "ONLINE", "ONLINE"]);
    });
  });
});

describe("ingest timers (real flush and sweep intervals)", () => {
  it("flushes heartbeats and sweeps liveness on their own, and flushes on stop", async () => {
    const database = await createTestDatabase();
    try {
      const gw = await startTestGateway(
        { heartbeatFlushInterval: "50ms", livenessSweepInterval: "50ms", staleAfter: "1s", offlineAfter: "2s" },
        database,
      );
      let adminKey = gw.adminKey;
      let agentId: string;
      try {
        const agent = await enrollAgent(gw);
        agentId = agent.registration.agentId;
        const client = gatewayClient(gw.transport);
        await client.uploadHeartbeat({ agentVersion: "3.1.0" }, withSession(agent.session));
        await vi.waitFor(async () => {
          expect((await gw.admin(AgentService).getAgent({ id: agentId })).agent?.agentVersion).toBe("3.1.0");
        }, { timeout: 10_000, interval: 25 });
        // No more heartbeats: the sweeper walks the agent to OFFLINE by itself.
        await vi.waitFor(async () => {
          const audit = await gw.admin(AuditService).listAuditEvents({ action: "agent.liveness_changed" });
          const tos = audit.events.filter((e) => e.target === `agent:${agentId}`).map((e) => e.data?.to);
          expect(tos).toEqual(["ONLINE", "STALE", "OFFLINE"]);
        }, { timeout: 15_000, interval: 50 });
        // A heartbeat received just before shutdown is written by stop(), not lost.
        await client.uploadHeartbeat({ agentVersion: "3.2.0" }, withSession(agent.session));
        adminKey = gw.adminKey;
      } finally {
        await gw.stop();
      }
      const again = await startTestGateway({}, database);
      try {
        expect((await again.admin(AgentService, adminKey).getAgent({ id: agentId })).agent?.agentVersion).toBe("3.2.0");
      } finally {
        await again.stop();
      }
    } finally {
      await database.drop();
    }
  });
});

describe("ingest on the embedded database (PGlite)", () => {
  it("stores, deduplicates, reads back, flushes heartbeats and sweeps the same way", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "agw-ingest-pglite-"));
    const gw = await startTestGateway(
      { databaseUrl: "", dataDir, heartbeatFlushInterval: "1h", livenessSweepInterval: "1h" },
      { url: "", drop: async () => {} },
    );
    try {
      expect(gw.gateway.context.database.kind).toBe("pglite");
      const client = gatewayClient(gw.transport);
      const agent = await enrollAgent(gw);
      const batch = [...points("lite", 3), points("lite", 1)[0]!];
      expect(await client.uploadTelemetry({ points: batch }, withSession(agent.session))).toMatchObject({ accepted: 3, duplicates: 1 });
      expect(await client.uploadTelemetry({ points: batch }, withSession(agent.session))).toMatchObject({ accepted: 0, duplicates: 4 });
      const payload = new Uint8Array([0, 1, 2, 255]);
      expect(await client.uploadEvents({ events: [event("lite-ev", timestampFromMs(BASE_MS), payload)] }, withSession(agent.session))).toMatchObject({ accepted: 1 });
      const page = await gw.admin(AgentService).listAgentTelemetry({ agentId: agent.registration.agentId, pageSize: 2 });
      expect(page.points.map((p) => p.id)).toEqual(["lite-2", "lite-1"]);
      const rest = await gw.admin(AgentService).listAgentTelemetry({ agentId: agent.registration.agentId, pageSize: 2, pageToken: page.nextPageToken });
      expect(rest.points.map((p) => p.id)).toEqual(["lite-0"]);
      const events = await gw.admin(AgentService).listAgentEvents({ agentId: agent.registration.agentId });
      expect(Buffer.from(events.events[0]?.event?.payload ?? []).equals(payload)).toBe(true);

      await client.uploadHeartbeat({ agentVersion: "9.9.9", host: { hostname: "lite", os: "linux", arch: "x64" } }, withSession(agent.session));
      await gw.gateway.context.heartbeats.flush();
      const shown = (await gw.admin(AgentService).getAgent({ id: agent.registration.agentId })).agent;
      expect(shown?.agentVersion).toBe("9.9.9");
      expect(shown?.liveness).toBe(Liveness.ONLINE);
      const swept = await gw.gateway.context.liveness.sweep(timestampDate(shown!.lastSeenAt!));
      expect(swept.transitions.map((t) => [t.agentId, t.from, t.to])).toEqual([[agent.registration.agentId, "OFFLINE", "ONLINE"]]);
    } finally {
      await gw.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000); // the embedded engine takes seconds to start and migrate
});

describe("per-agent upload quotas", () => {
  let limited: TestGateway;
  beforeAll(async () => {
    limited = await startTestGateway({ uploadItemRate: "0.01/s:10", uploadByteRate: "1/s:3000" });
  });
  afterAll(async () => {
    await limited?.stop();
  });

  it("refuses items past the agent's budget with RESOURCE_EXHAUSTED and a retry hint; other agents are unaffected", async () => {
    const c = gatewayClient(limited.transport);
    const noisy = await enrollAgent(limited);
    const quiet = await enrollAgent(limited);
    expect(await c.uploadTelemetry({ points: points("q1", 10) }, withSession(noisy.session))).toMatchObject({ accepted: 10 });
    const err = await rejection(c.uploadTelemetry({ points: points("q2", 1) }, withSession(noisy.session)));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toMatch(/upload rate limit exceeded: retry after \d+ s/);
    expect(err.metadata.get("retry-after")).toMatch(/^\d+$/);
    expect(await c.uploadTelemetry({ points: points("q3", 5) }, withSession(quiet.session))).toMatchObject({ accepted: 5 });
  });

  it("refuses bytes past the agent's budget", async () => {
    const c = gatewayClient(limited.transport);
    const agent = await enrollAgent(limited);
    expect(await c.uploadEvents({ events: [event("b1", timestampFromMs(BASE_MS), new Uint8Array(2000))] }, withSession(agent.session))).toMatchObject({ accepted: 1 });
    const err = await rejection(c.uploadEvents({ events: [event("b2", timestampFromMs(BASE_MS), new Uint8Array(2000))] }, withSession(agent.session)));
    expect(err.code).toBe(Code.ResourceExhausted);
  });

  // The budget counts the encoded request whatever the framing: neither gRPC nor compression
  // (a tiny wire body that decodes to a large request) lets an agent past it.
  it.each([
    ["binary Connect", () => createConnectTransport({ baseUrl: limited.url, httpVersion: "2", useBinaryFormat: true })],
    ["gRPC", () => createGrpcTransport({ baseUrl: limited.url })],
    ["gzip-compressed binary Connect", () => createConnectTransport({ baseUrl: limited.url, httpVersion: "2", useBinaryFormat: true, sendCompression: compressionGzip, compressMinBytes: 1 })],
    ["gzip-compressed gRPC", () => createGrpcTransport({ baseUrl: limited.url, sendCompression: compressionGzip, compressMinBytes: 1 })],
  ])("charges the bytes of %s uploads (points and events)", async (_name, transport) => {
    const c = gatewayClient(transport());
    for (const kind of ["events", "points"] as const) {
      const agent = await enrollAgent(limited);
      const upload = (id: string) =>
        kind === "events"
          ? c.uploadEvents({ events: [event(id, timestampFromMs(BASE_MS), new Uint8Array(2000))] }, withSession(agent.session))
          : c.uploadTelemetry({ points: [{ ...points(id, 1)[0]!, labels: { pad: "x".repeat(250), pad2: "y".repeat(250), pad3: "z".repeat(250), pad4: "w".repeat(250), pad5: "v".repeat(250), pad6: "u".repeat(250), pad7: "t".repeat(250), pad8: "s".repeat(250) } }] }, withSession(agent.session));
      expect(await upload(`${kind}-1`)).toMatchObject({ accepted: 1 });
      const err = await rejection(upload(`${kind}-2`));
      expect({ kind, code: err.code }).toEqual({ kind, code: Code.ResourceExhausted });
    }
  });
});
