import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Agent, AgentService, Liveness, type WatchAgentsRequestSchema, type WatchAgentsResponse } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { ApiKeyService, Role } from "../gen/agentgateway/admin/v1/api_keys_pb.js";
import { EnrollmentTokenService } from "../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { AgentState } from "../gen/agentgateway/v1/common_pb.js";
import { AgentStatus } from "../gen/agentgateway/v1/ingest_pb.js";
import { gatewayClient, handshake, register, withSession } from "../agent/lib/direct.js";
import { createAdminClient } from "../client/admin-client.js";
import { AgentWatchHub, DEFAULT_WATCH_OPTIONS } from "../server/agents/agent-watch.js";
import { createTenant, mintToken, newIdentity } from "./support/agents.js";
import { expectCode } from "./support/expect-code.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";

let gw: TestGateway;
let replica: TestGateway;

/** Reads a WatchAgents stream in the background and keeps the view a console would keep. */
class Watch {
  readonly messages: WatchAgentsResponse[] = [];
  readonly view = new Map<string, Agent>();
  readonly removed: string[] = [];
  snapshots = 0;
  error: unknown;
  private readonly abort = new AbortController();
  private waiters = new Set<() => void>();

  constructor(client: Client<typeof AgentService>, req: MessageInitShape<typeof WatchAgentsRequestSchema> = {}) {
    void (async () => {
      try {
        for await (const m of client.watchAgents(req, { signal: this.abort.signal })) {
          this.messages.push(m);
          if (m.reset) this.view.clear();
          for (const a of m.agents) this.view.set(a.id, a);
          for (const id of m.removedIds) {
            this.view.delete(id);
            this.removed.push(id);
          }
          if (m.snapshotComplete) this.snapshots++;
          for (const w of this.waiters) w();
        }
      } catch (err) {
        this.error = err;
        for (const w of this.waiters) w();
      }
    })();
  }

  /** Resolves once `check` holds, failing after `timeoutMs`. */
  async until(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (this.error) throw this.error;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`watch: timed out waiting for ${what}; view: ${JSON.stringify([...this.view.values()].map((a) => [a.name, AgentState[a.state], Liveness[a.liveness]]))}`);
      await new Promise<void>((resolve) => {
        const done = () => {
          this.waiters.delete(done);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(done, left);
        this.waiters.add(done);
      });
    }
  }

  close(): void {
    this.abort.abort();
  }
}

const byName = (w: Watch, name: string) => [...w.view.values()].find((a) => a.name === name);

beforeAll(async () => {
  // Liveness is swept often so the OFFLINE transition shows quickly; staleAfter is short so it happens at all.
  const settings = { heartbeatFlushInterval: "100ms", livenessSweepInterval: "200ms", staleAfter: "2s", offlineAfter: "3s", maxStreamsPerCredential: "3" };
  gw = await startTestGateway(settings);
  replica = await startTestGateway(settings, gw.database);
}, 60_000);

afterAll(async () => {
  await replica?.stop();
  await gw?.stop();
});

describe("WatchAgents", () => {
  it("sends a snapshot, then a registration, approval, first heartbeat, revocation and going offline, as they happen", async () => {
    const before = await register(gatewayClient(gw.transport), { token: await mintToken(gw), identity: newIdentity(), name: "watch-existing" });
    const watch = new Watch(gw.admin(AgentService));
    await watch.until(() => watch.snapshots === 1, "the snapshot");
    expect(watch.messages[0]?.reset).toBe(true);
    expect(watch.view.has(before.agentId)).toBe(true);

    const identity = newIdentity();
    const reg = await register(gatewayClient(gw.transport), { token: await mintToken(gw, { requiresApproval: true }), identity, name: "watch-pending" });
    await watch.until(() => byName(watch, "watch-pending")?.state === AgentState.PENDING_APPROVAL, "the pending agent");
    expect(byName(watch, "watch-pending")?.verificationCode).toBe(reg.verificationCode);

    await gw.admin(AgentService).approveAgent({ id: reg.agentId, expectedVerificationCode: reg.verificationCode });
    await watch.until(() => byName(watch, "watch-pending")?.state === AgentState.ACTIVE, "the approval");

    const session = await handshake(gatewayClient(gw.transport), reg.agentId, identity);
    await gatewayClient(gw.transport).uploadHeartbeat({ status: AgentStatus.HEALTHY, agentVersion: "1.2.3" }, withSession(session));
    await watch.until(() => byName(watch, "watch-pending")?.liveness === Liveness.ONLINE, "ONLINE after the first heartbeat");
    expect(byName(watch, "watch-pending")?.agentVersion).toBe("1.2.3");

    await gw.admin(AgentService).revokeAgent({ id: reg.agentId, reason: "watch test" });
    await watch.until(() => byName(watch, "watch-pending")?.state === AgentState.REVOKED, "the revocation");
    expect(byName(watch, "watch-pending")?.revokeReason).toBe("watch test");

    // No more heartbeats: the sweeper records STALE and OFFLINE, and the watch shows them.
    await watch.until(() => byName(watch, "watch-pending")?.liveness === Liveness.OFFLINE, "OFFLINE after silence");
    expect(watch.snapshots).toBe(1);
    watch.close();
  });

  it("sends changes made through another replica (over the PostgreSQL bus)", async () => {
    const watch = new Watch(createAdminClient(AgentService, gw.adminKey, (interceptors) => createConnectTransport({ baseUrl: replica.url, httpVersion: "2", interceptors })));
    await watch.until(() => watch.snapshots === 1, "the snapshot on the replica");
    const reg = await register(gatewayClient(gw.transport), { token: await mintToken(gw, { requiresApproval: true }), identity: newIdentity(), name: "watch-cross" });
    await watch.until(() => watch.view.has(reg.agentId), "the agent registered on the other replica");
    await gw.admin(AgentService).rejectAgent({ id: reg.agentId, reason: "not ours" });
    await watch.until(() => watch.view.get(reg.agentId)?.state === AgentState.REJECTED, "the rejection made on the other replica");
    watch.close();
  });

  it("applies the filter: an agent leaving it is sent as removed", async () => {
    const watch = new Watch(gw.admin(AgentService), { states: [AgentState.PENDING_APPROVAL] });
    await watch.until(() => watch.snapshots === 1, "the snapshot");
    expect([...watch.view.values()].every((a) => a.state === AgentState.PENDING_APPROVAL)).toBe(true);
    const reg = await register(gatewayClient(gw.transport), { token: await mintToken(gw, { requiresApproval: true }), identity: newIdentity(), name: "watch-filter" });
    await watch.until(() => watch.view.has(reg.agentId), "the pending agent");
    await gw.admin(AgentService).approveAgent({ id: reg.agentId });
    await watch.until(() => watch.removed.includes(reg.agentId), "the approved agent removed from a pending-only watch");
    expect(watch.view.has(reg.agentId)).toBe(false);
    watch.close();
  });

  it("never shows another tenant's agents, in the snapshot or as changes", async () => {
    const other = await createTenant(gw, `watch-other-${Date.now()}`);
    const watch = new Watch(gw.admin(AgentService, other.adminKey));
    await watch.until(() => watch.snapshots === 1, "the other tenant's snapshot");
    expect(watch.view.size).toBe(0);
    // Changes in the default tenant; then one in the other tenant, which must be the only thing seen.
    const theirs = await register(gatewayClient(gw.transport), { token: await mintToken(gw, { requiresApproval: true }), identity: newIdentity(), name: "watch-not-yours" });
    await gw.admin(AgentService).approveAgent({ id: theirs.agentId });
    const { secret } = await gw.admin(EnrollmentTokenService, other.adminKey).createEnrollmentToken({});
    const mine = await register(gatewayClient(gw.transport), { token: secret, identity: newIdentity(), name: "watch-mine" });
    await watch.until(() => watch.view.has(mine.agentId), "the other tenant's own agent");
    const seen = watch.messages.flatMap((m) => [...m.agents.map((a) => a.id), ...m.removedIds]);
    expect(seen).not.toContain(theirs.agentId);
    expect(new Set(seen)).toEqual(new Set([mine.agentId]));
    watch.close();
  });

  it("is capped per API key by the shared stream cap (RESOURCE_EXHAUSTED), and frees a slot when one closes", async () => {
    const { secret } = await gw.admin(ApiKeyService).createApiKey({ name: "watch-viewer", role: Role.VIEWER });
    const client = gw.admin(AgentService, secret);
    const open = [new Watch(client), new Watch(client), new Watch(client)];
    for (const w of open) await w.until(() => w.snapshots === 1, "a snapshot within the cap");
    const refused = new Watch(client);
    await refused.until(() => refused.error !== undefined, "the refusal").catch(() => {});
    await expectCode(Promise.reject(refused.error), Code.ResourceExhausted, /open streams/);
    open[0]?.close();
    // The server notices the cancelled stream asynchronously.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const again = new Watch(client);
      try {
        await again.until(() => again.snapshots === 1, "a snapshot after a slot was freed", 2_000);
        again.close();
        break;
      } catch (err) {
        again.close();
        if (Date.now() > deadline) throw err;
      }
    }
    for (const w of open) w.close();
  });

  it("refreshes agents that only heartbeat, so a console's last-heartbeat time keeps up", async () => {
    // Its own gateway with long liveness thresholds, so no liveness transition announces the agent.
    const quiet = await startTestGateway({ heartbeatFlushInterval: "100ms", staleAfter: "10m", offlineAfter: "20m" });
    const ctx = quiet.gateway.context;
    const hub = new AgentWatchHub(ctx.database.db, ctx.bus, ctx.logger, { ...DEFAULT_WATCH_OPTIONS, refreshMs: 300 });
    hub.start();
    try {
      const identity = newIdentity();
      const reg = await register(gatewayClient(quiet.transport), { token: await mintToken(quiet), identity, name: "watch-refresh" });
      const session = await handshake(gatewayClient(quiet.transport), reg.agentId, identity);
      const beat = () => gatewayClient(quiet.transport).uploadHeartbeat({ status: AgentStatus.HEALTHY, agentVersion: "1.0.0" }, withSession(session));
      await beat();
      await new Promise((r) => setTimeout(r, 500));
      const watcher = hub.open(reg.tenantId, { states: [], labels: {}, namePrefix: "" });
      // Same version, same status, already online: nothing is announced; only the refresh sees it.
      await beat();
      const signal = AbortSignal.timeout(5_000);
      for (;;) {
        const batch = await watcher.next(signal, 60_000);
        if (batch.kind === "closed") throw new Error("no refresh within 5 s");
        if (batch.kind === "changes" && batch.upserts.some((a) => a.id === reg.agentId)) break;
      }
      hub.release(watcher);
    } finally {
      await hub.stop();
      await quiet.stop();
    }
  });

  it("refuses a caller without a key, and validates the filter at the edge", async () => {
    const anonymous = createAdminClient(AgentService, "", (interceptors) => createConnectTransport({ baseUrl: gw.url, httpVersion: "2", interceptors }));
    const noKey = new Watch(anonymous);
    await noKey.until(() => noKey.error !== undefined, "the refusal").catch(() => {});
    await expectCode(Promise.reject(noKey.error), Code.Unauthenticated);
    const bad = new Watch(gw.admin(AgentService), { namePrefix: "x".repeat(129) });
    await bad.until(() => bad.error !== undefined, "the refusal").catch(() => {});
    await expectCode(Promise.reject(bad.error), Code.InvalidArgument, /name_prefix/);
  });
});
