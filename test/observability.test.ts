import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { ApiKeyService } from "../gen/agentgateway/admin/v1/api_keys_pb.js";
import { gatewayClient, register, sendHeartbeat, uploadTelemetry } from "../agent/lib/direct.js";
import { bearerInterceptor } from "../client/admin-client.js";
import { createGatewayTransport } from "../client/transport.js";
import { AgentStatus } from "../gen/agentgateway/v1/ingest_pb.js";
import { enrollAgent, newIdentity } from "./support/agents.js";
import { cliEnv, runCliProcess } from "./support/agwctl.js";
import { startOtlpReceiver, type OtlpReceiver } from "./support/otlp-receiver.js";
import { parsePrometheus, scrape, sampleValue } from "./support/prometheus.js";
import { openStream } from "./support/stream.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";

const TRUST = { pins: [] };

function points(prefix: string, n: number) {
  return Array.from({ length: n }, (_, i) => ({
    id: `${prefix}-${i}`,
    name: "cpu",
    labels: {},
    value: i,
    observedAt: timestampFromMs(Date.UTC(2024, 0, 1) + i * 1000),
  }));
}

describe("metrics at /metrics", () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({ registerRatePerSource: "1/s:3", heartbeatFlushInterval: "1h" });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it("counts a handshake, uploads and their duplicates, heartbeats and a ControlStream", async () => {
    const before = await scrape(`${gw.url}/metrics`);
    const agent = await enrollAgent(gw);
    const client = gatewayClient(gw.transport);
    expect(await uploadTelemetry(client, agent.session, points("p", 5))).toEqual({ accepted: 5, duplicates: 0 });
    expect(await uploadTelemetry(client, agent.session, points("p", 7))).toEqual({ accepted: 2, duplicates: 5 });
    await sendHeartbeat(client, agent.session, { agentVersion: "1.0.0", status: AgentStatus.HEALTHY });
    await gw.gateway.context.heartbeats.flush();
    const stream = openStream(client, agent.session);
    await stream.next(); // the welcome: the stream is registered
    const during = await scrape(`${gw.url}/metrics`);
    stream.close();
    await stream.ended;

    const delta = (name: string, labels: Record<string, string> = {}) => sampleValue(during, name, labels) - sampleValue(before, name, labels);
    const method = (m: string, status = "OK") => ({
      rpc_service: "agentgateway.v1.AgentGatewayService",
      rpc_method: m,
      rpc_status_code: status,
      rpc_system: "connect_rpc",
    });
    expect(delta("rpc_server_call_duration_count", method("UploadTelemetry"))).toBe(2);
    expect(delta("rpc_server_call_duration_count", method("CompleteAuthHandshake"))).toBe(1);
    // The histogram has buckets and a sum, as Prometheus' histogram_quantile needs.
    expect(sampleValue(during, "rpc_server_call_duration_bucket", { ...method("UploadTelemetry"), le: "+Inf" })).toBeGreaterThanOrEqual(2);
    expect(sampleValue(during, "rpc_server_call_duration_sum", method("UploadTelemetry"))).toBeGreaterThan(0);
    expect(delta("agw_handshakes_total", { outcome: "success" })).toBe(1);
    expect(delta("agw_registrations_total", { outcome: "success" })).toBe(1);
    expect(delta("agw_upload_items_total", { kind: "telemetry", result: "accepted" })).toBe(7);
    expect(delta("agw_upload_items_total", { kind: "telemetry", result: "duplicate" })).toBe(5);
    expect(delta("agw_heartbeats_written_total")).toBe(1);
    expect(delta("agw_heartbeat_flushes_total", { outcome: "ok" })).toBe(1);
    expect(sampleValue(during, "agw_control_streams")).toBe(1);
    // The pool of the external PostgreSQL, by the OpenTelemetry database conventions.
    expect(sampleValue(during, "db_client_connection_max")).toBe(10);
    expect(sampleValue(during, "db_client_connection_count", { db_client_connection_state: "used" })).toBeGreaterThanOrEqual(0);
    expect(during.some((s) => s.name === "db_client_connection_pending_requests")).toBe(true);
    // Figures read from the database at scrape time: every state is reported, also at zero.
    expect(
      during
        .filter((s) => s.name === "agw_rollouts")
        .map((s) => s.labels.state)
        .sort(),
    ).toEqual(["CANCELLED", "COMPLETED", "HALTED", "PLANNED", "RUNNING"]);
    expect(sampleValue(during, "agw_commands_oldest_unacked_age")).toBe(0);

    // The client's cancel (an HTTP/2 RST_STREAM) reaches the gateway after the client has
    // finished with the stream: scrape once the gateway has seen it.
    await vi.waitFor(() => expect(gw.gateway.context.control.size).toBe(0));
    const after = await scrape(`${gw.url}/metrics`);
    expect(sampleValue(after, "agw_control_streams")).toBe(0);
    // Once the stream ended it is measured as one call.
    expect(
      sampleValue(after, "rpc_server_call_duration_count", method("ControlStream")) - sampleValue(before, "rpc_server_call_duration_count", method("ControlStream")),
    ).toBe(1);
  });

  it("counts revocations and never puts a tenant, agent or key id in a label", async () => {
    const agent = await enrollAgent(gw);
    const before = await scrape(`${gw.url}/metrics`);
    await gw.admin(AgentService).revokeAgent({ id: agent.registration.agentId, reason: "test" });
    const after = await scrape(`${gw.url}/metrics`);
    expect(sampleValue(after, "agw_revocations_total", { object: "agent" }) - sampleValue(before, "agw_revocations_total", { object: "agent" })).toBe(1);
    const tenantId = (await gw.admin(ApiKeyService).whoAmI({})).tenantId;
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    for (const id of [agent.registration.agentId, tenantId, gw.adminKey]) expect(text).not.toContain(id);
  });

  it("answers a scrape over HTTP/1.1 in the text format and refuses other methods", async () => {
    const res = await fetch(`${gw.url}/metrics`);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(() => parsePrometheus("garbage line {")).toThrow();
    expect(parsePrometheus(await res.text()).length).toBeGreaterThan(10);
    expect((await fetch(`${gw.url}/metrics`, { method: "POST" })).status).toBe(405);
  });

  it("echoes the request id a caller sent, and makes one when the caller's is unusable", async () => {
    const ok = await fetch(`${gw.url}/agentgateway.admin.v1.ApiKeyService/WhoAmI`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${gw.adminKey}`, "x-request-id": "req-12345678" },
      body: "{}",
    });
    expect(ok.headers.get("x-request-id")).toBe("req-12345678");
    const refused = await fetch(`${gw.url}/agentgateway.admin.v1.ApiKeyService/WhoAmI`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "bad id\twith spaces" },
      body: "{}",
    });
    expect(refused.status).toBe(401);
    // Errors carry it too, so a user can quote it from a failure.
    expect(refused.headers.get("x-request-id")).toMatch(/^[0-9a-f]{16}$/);
  });
  it("counts failed handshakes by reason and refusals by the limit that refused (last: it uses up the Register budget)", async () => {
    const client = gatewayClient(gw.transport);
    const before = await scrape(`${gw.url}/metrics`);
    const identity = newIdentity();
    // Register is limited to a burst of 3 per source here: a stranger's bad tokens use it up.
    let refused = 0;
    for (let i = 0; i < 6; i++) {
      try {
        await register(client, { token: `agwe_${"x".repeat(43)}`, identity, name: "intruder" });
      } catch (err) {
        if (ConnectError.from(err).code === Code.ResourceExhausted) refused++;
      }
    }
    expect(refused).toBeGreaterThan(0);
    // A handshake for an agent that does not exist fails at Begin.
    await expect(client.beginAuthHandshake({ agentId: crypto.randomUUID(), identityPublicKey: identity.publicKey })).rejects.toThrow();
    const after = await scrape(`${gw.url}/metrics`);
    const delta = (name: string, labels: Record<string, string> = {}) => sampleValue(after, name, labels) - sampleValue(before, name, labels);
    expect(delta("agw_ratelimit_refusals_total", { limit: "register_per_source" })).toBe(refused);
    expect(delta("agw_registrations_total", { outcome: "failure" })).toBe(6);
    expect(delta("agw_registrations_total", { outcome: "failure", reason: "RESOURCE_EXHAUSTED" })).toBe(0);
    expect(delta("agw_handshakes_total", { outcome: "failure" })).toBe(1);
    // Reasons are fixed words, never a caller's input.
    for (const s of after.filter((x) => x.name === "agw_registrations_total" || x.name === "agw_handshakes_total"))
      expect(s.labels.reason).toMatch(/^[A-Z_]*$/);
  });
});

describe("metrics on a listener of their own", () => {
  it("serves /metrics only there when AGW_METRICS_LISTEN is set, and nowhere when off", async () => {
    const gw = await startTestGateway({ metricsListen: "127.0.0.1:0" });
    try {
      expect(gw.gateway.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const samples = await scrape(gw.gateway.metricsUrl ?? "");
      expect(samples.some((s) => s.name === "agw_control_streams")).toBe(true);
      // Not on the gateway port any more: the RPC handler answers (not found), not the metrics.
      const onGateway = await fetch(`${gw.url}/metrics`);
      expect(onGateway.status).toBe(404);
      expect(await onGateway.text()).not.toContain("rpc_server_call_duration");
      expect((await fetch(`${gw.gateway.metricsUrl?.replace("/metrics", "/other")}`)).status).toBe(404);
    } finally {
      await gw.stop();
    }
    const off = await startTestGateway({ metricsListen: "off" });
    try {
      expect(off.gateway.metricsUrl).toBeUndefined();
      expect(await (await fetch(`${off.url}/metrics`)).text()).not.toContain("rpc_server_call_duration");
    } finally {
      await off.stop();
    }
  });
});

describe("tracing", () => {
  let receiver: OtlpReceiver;
  let gw: TestGateway;
  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    gw = await startTestGateway({ otlpEndpoint: receiver.url });
  });
  afterAll(async () => {
    await gw?.stop();
    await receiver?.close();
  });

  /** An admin client whose calls carry `traceparent` the way agwctl sends TRACEPARENT. */
  function tracedAdmin(traceparent: string) {
    const t = createGatewayTransport(gw.url, TRUST, { interceptors: [bearerInterceptor(gw.adminKey)], traceparent: () => traceparent });
    return { client: createClient(AgentService, t.transport), close: t.close };
  }

  it("exports the span of an RPC with its database queries as children, under the trace id the client sent", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const parentId = "00f067aa0ba902b7";
    const { client, close } = tracedAdmin(`00-${traceId}-${parentId}-01`);
    try {
      await client.listAgents({ pageSize: 10 });
    } finally {
      close();
    }
    await gw.gateway.flushTraces();
    const inTrace = receiver.spans.filter((s) => s.traceId === traceId);
    const server = inTrace.find((s) => s.name === "agentgateway.admin.v1.AgentService/ListAgents");
    expect(server).toBeDefined();
    if (!server) return;
    expect(server.parentSpanId).toBe(parentId);
    expect(server.kind).toBe(2); // SERVER
    expect(server.attributes).toMatchObject({
      "rpc.system": "connect_rpc",
      "rpc.service": "agentgateway.admin.v1.AgentService",
      "rpc.method": "ListAgents",
      "rpc.grpc.status_code": 0,
      "rpc.status_code": "OK",
    });
    expect(server.resource["service.name"]).toBe("agentgateway");
    const queries = inTrace.filter((s) => s.parentSpanId === server.spanId);
    // The API-key lookup and the page of agents, at least.
    expect(queries.length).toBeGreaterThanOrEqual(2);
    for (const q of queries) {
      expect(q.kind).toBe(3); // CLIENT
      expect(q.attributes["db.system.name"]).toBe("postgresql");
      expect(String(q.attributes["db.query.text"])).not.toContain(gw.adminKey);
    }
    expect(queries.some((q) => q.attributes["db.collection.name"] === "agents")).toBe(true);
  });

  it("starts a new trace for a malformed traceparent, marks server faults only, and traces an unsampled call not at all", async () => {
    const bad = tracedAdmin("00-zzzz-not-a-trace");
    try {
      await bad.client.getAgent({ id: crypto.randomUUID() }).catch((err) => expect(ConnectError.from(err).code).toBe(Code.NotFound));
    } finally {
      bad.close();
    }
    const unsampledTrace = "0af7651916cd43dd8448eb211c80319c";
    const unsampled = tracedAdmin(`00-${unsampledTrace}-b7ad6b7169203331-00`);
    try {
      await unsampled.client.listAgents({ pageSize: 1 });
    } finally {
      unsampled.close();
    }
    await gw.gateway.flushTraces();
    const getAgent = receiver.spans.filter((s) => s.name === "agentgateway.admin.v1.AgentService/GetAgent");
    expect(getAgent).toHaveLength(1);
    expect(getAgent[0]?.parentSpanId).toBe("");
    expect(getAgent[0]?.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(getAgent[0]?.attributes["rpc.status_code"]).toBe("NOT_FOUND");
    // NOT_FOUND is the caller's mistake, not a server fault (RPC conventions): status unset.
    expect(getAgent[0]?.status.code ?? 0).toBe(0);
    expect(receiver.spans.filter((s) => s.traceId === unsampledTrace)).toHaveLength(0);
  });

  it("continues the trace of a script that runs agwctl with TRACEPARENT", async () => {
    const dir = mkdtempSync(join(tmpdir(), "agw-obs-cli-"));
    try {
      const traceId = "5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e";
      const env = cliEnv(dir, { AGW_SERVER: gw.url, AGW_API_KEY: gw.adminKey, TRACEPARENT: `00-${traceId}-1234567890abcdef-01` });
      const result = await runCliProcess(["agents", "list", "-o", "json"], env);
      expect(result.code, result.stderr).toBe(0);
      await gw.gateway.flushTraces();
      const server = receiver.spans.find((s) => s.traceId === traceId && s.name === "agentgateway.admin.v1.AgentService/ListAgents");
      expect(server?.parentSpanId).toBe("1234567890abcdef");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("puts the trace id on the call's log context and stamps spans with the replica", async () => {
    const res = await fetch(`${gw.url}/agentgateway.admin.v1.ApiKeyService/WhoAmI`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${gw.adminKey}`,
        traceparent: "00-11111111111111111111111111111111-2222222222222222-01",
      },
      body: "{}",
    });
    expect(res.status).toBe(200);
    await gw.gateway.flushTraces();
    const span = receiver.spans.find((s) => s.traceId === "11111111111111111111111111111111" && s.kind === 2);
    expect(span?.resource["service.instance.id"]).toBe(gw.gateway.context.config.replicaId);
    expect(span?.attributes["rpc.request_id"]).toBe(res.headers.get("x-request-id"));
  });
});
