import { Writable } from "node:stream";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { ApiKeyService, Role } from "../gen/agentgateway/admin/v1/api_keys_pb.js";
import { SystemKeyService } from "../gen/agentgateway/provider/v1/tenants_pb.js";
import { EventSeverity } from "../gen/agentgateway/v1/ingest_pb.js";
import { AgentStatus } from "../gen/agentgateway/v1/ingest_pb.js";
import { gatewayClient, handshake, register, sendHeartbeat, uploadEvents, uploadTelemetry } from "../agent/lib/direct.js";
import { mintToken, newIdentity } from "./support/agents.js";
import { startOtlpReceiver, type OtlpReceiver } from "./support/otlp-receiver.js";
import { ackOf, openStream } from "./support/stream.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";

/**
 * The whole flow with every log line the gateway writes (trace level, tracing on) captured: no
 * secret the run minted may appear in them, in full or as its random part, and lines written
 * for a call must carry its request id, tenant, agent and trace.
 */
describe("gateway logs of a full run", () => {
  const lines: string[] = [];
  const secrets = new Map<string, string>();
  let receiver: OtlpReceiver;
  let gw: TestGateway;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(
          ...String(chunk)
            .split("\n")
            .filter((l) => l !== ""),
        );
        done();
      },
    });
    gw = await startTestGateway({ logLevel: "trace", otlpEndpoint: receiver.url, heartbeatFlushInterval: "1h" }, undefined, sink);
    secrets.set("bootstrap admin key", gw.adminKey);

    const client = gatewayClient(gw.transport);
    // Operator key creation; the new key is then used for the rest of the admin calls.
    const created = await gw.admin(ApiKeyService).createApiKey({ name: "ops", role: Role.ADMIN });
    secrets.set("created API key", created.secret);
    const admin = (s: typeof AgentService) => gw.admin(s, created.secret);

    // Enrollment with approval, for two agents (one will be revoked, the other hears of it).
    const agents = [];
    for (const name of ["first", "second"]) {
      const token = await mintToken(gw, { requiresApproval: true });
      secrets.set(`enrollment token of ${name}`, token);
      const identity = newIdentity();
      const registration = await register(client, { token, identity, name });
      await admin(AgentService).approveAgent({ id: registration.agentId });
      const session = await handshake(client, registration.agentId, identity);
      secrets.set(`session token of ${name}`, session.token);
      agents.push({ identity, registration, session });
    }
    const [first, second] = agents;
    if (!first || !second) throw new Error("enrollment failed");

    // Uploads (with a duplicate), heartbeats, a ControlStream that receives a command and acks it.
    const points = [1, 2, 3].map((i) => ({ id: `p-${i}`, name: "cpu", labels: {}, value: i, observedAt: timestampFromMs(Date.UTC(2024, 0, 1, 0, 0, i)) }));
    await uploadTelemetry(client, first.session, points);
    await uploadTelemetry(client, first.session, points);
    await uploadEvents(client, first.session, [
      {
        id: "e-1",
        type: "boot",
        severity: EventSeverity.INFO,
        message: "up",
        attributes: {},
        payload: new Uint8Array(),
        occurredAt: timestampFromMs(Date.UTC(2024, 0, 1)),
      },
    ]);
    await sendHeartbeat(client, first.session, { agentVersion: "1.0.0", status: AgentStatus.HEALTHY });
    await gw.gateway.context.heartbeats.flush();
    const stream = openStream(client, first.session);
    await stream.next();
    await admin(AgentService).revokeAgent({ id: second.registration.agentId, reason: "retired host" });
    const notice = await stream.next();
    if (notice.kind.case !== "command") throw new Error(`expected a command, got ${notice.kind.case}`);
    stream.send(ackOf(notice.kind.value.sequence));
    await gw.gateway.context.control.flushAcks();
    stream.close();
    await stream.ended;
    // A revoked agent's calls fail (and are logged as such), with its old session token.
    await sendHeartbeat(client, second.session, { agentVersion: "1.0.0", status: AgentStatus.HEALTHY }).catch(() => {});
    // A stranger guessing at the admin API with a key-shaped string.
    await gw
      .admin(ApiKeyService, `agwk_${"A".repeat(43)}`)
      .whoAmI({})
      .catch(() => {});
    // The provider rotates its system key (twice: the rotated key is used once), and tries the old one.
    secrets.set("bootstrap system key", gw.systemKey);
    const rotated = await gw.admin(SystemKeyService, gw.systemKey).rotateSystemKey({});
    secrets.set("rotated system key", rotated.secret);
    await gw.admin(SystemKeyService, gw.systemKey).whoAmI({}).catch(() => {});
    const again = await gw.admin(SystemKeyService, rotated.secret).rotateSystemKey({ name: "again" });
    secrets.set("system key rotated again", again.secret);
    await gw.stop();
  });
  afterAll(async () => {
    await receiver?.close();
  });

  it("captured the run", () => {
    expect(lines.length).toBeGreaterThan(20);
    expect(secrets.size).toBe(9);
    expect(lines.some((l) => l.includes('"system key rotated"'))).toBe(true);
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
  });

  it("contains no secret minted in the run, in full or its random part", () => {
    const all = lines.join("\n");
    for (const [what, secret] of secrets) {
      const random = secret.replace(/^[a-z]+_/, "");
      expect(random.length, what).toBeGreaterThanOrEqual(32);
      expect(all.includes(secret), `${what} appears in the logs`).toBe(false);
      expect(all.includes(random), `the random part of the ${what} appears in the logs`).toBe(false);
    }
  });

  it("stamps every line written for a call with its request id, and with tenant, agent and trace where known", () => {
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const forCalls = parsed.filter((l) => l.rpc !== undefined);
    expect(forCalls.length).toBeGreaterThan(10);
    for (const line of forCalls) {
      expect(line.requestId).toMatch(/^[0-9a-f]{16}$/);
      expect(line.traceId).toMatch(/^[0-9a-f]{32}$/);
    }
    // Agent calls after the handshake carry the agent and its tenant.
    const upload = forCalls.filter((l) => l.rpc === "agentgateway.v1.AgentGatewayService/UploadTelemetry");
    expect(upload.length).toBeGreaterThanOrEqual(2);
    for (const line of upload) {
      expect(line.agentId).toMatch(/^[0-9a-f-]{36}$/);
      expect(line.tenantId).toMatch(/^[0-9a-f-]{36}$/);
    }
    // The ControlStream's own lines (written while the stream runs) carry it too.
    const streamLines = forCalls.filter((l) => l.rpc === "agentgateway.v1.AgentGatewayService/ControlStream");
    expect(streamLines.some((l) => l.msg === "control stream opened" && typeof l.agentId === "string")).toBe(true);
    // Operator calls carry the tenant and the key id (never the key).
    const revoke = forCalls.find((l) => l.rpc === "agentgateway.admin.v1.AgentService/RevokeAgent");
    expect(revoke?.operatorKeyId).toMatch(/^[0-9a-f-]{36}$/);
    // Distinct calls get distinct request ids.
    expect(new Set(forCalls.map((l) => l.requestId)).size).toBeGreaterThan(10);
    // Lines of background work belong to no call and say so by carrying none.
    expect(parsed.some((l) => l.msg === "gateway stopped" && l.requestId === undefined)).toBe(true);
  });
});
