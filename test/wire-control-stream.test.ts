import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { compressionGzip, createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { ControlStreamRequestSchema, GoAwayReason } from "../gen/agentgateway/v1/control_pb.js";
import { gatewayClient } from "../agent/lib/direct.js";
import { reasonOf } from "../client/reasons.js";
import { enrollAgent } from "./support/agents.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";
import { ackOf, openStream } from "./support/stream.js";

// The ControlStream has two transports (server/control/wire-control-stream.ts beneath
// connect-node for binary, uncompressed Connect and gRPC; connect-node for the rest). Every
// case here runs over each kind of client, so the two cannot drift apart: same messages, same
// refusals, same codes.

const MAX_MESSAGE_BYTES = 64 * 1024;
let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway({ maxMessageBytes: String(MAX_MESSAGE_BYTES), maxStreamsPerCredential: "1" });
});
afterAll(async () => {
  await gw?.stop();
});

/** Clients of each protocol and codec; `wire` says which the wire path serves. */
const CLIENTS: Array<{ name: string; wire: boolean; transport: () => Transport; callTimeoutMs?: number }> = [
  { name: "Connect, binary", wire: true, transport: () => createConnectTransport({ baseUrl: gw.url, httpVersion: "2", useBinaryFormat: true }) },
  { name: "gRPC", wire: true, transport: () => createGrpcTransport({ baseUrl: gw.url }) },
  { name: "Connect, JSON", wire: false, transport: () => createConnectTransport({ baseUrl: gw.url, httpVersion: "2", useBinaryFormat: false }) },
  {
    name: "Connect, binary, gzip",
    wire: false,
    transport: () => createConnectTransport({ baseUrl: gw.url, httpVersion: "2", useBinaryFormat: true, sendCompression: compressionGzip, compressMinBytes: 0 }),
  },
  { name: "gRPC with a deadline", wire: false, transport: () => createGrpcTransport({ baseUrl: gw.url, defaultTimeoutMs: 60_000 }) },
];

/** Opens a stream over `transport` and sends `messages` instead of the usual hello. */
async function refusal(transport: Transport, token: string | undefined, messages: Array<Parameters<ReturnType<typeof openStream>["send"]>[0]>) {
  const client = gatewayClient(transport);
  const requests = (async function* () {
    for (const m of messages) yield m;
    await new Promise((r) => setTimeout(r, 5_000));
  })();
  try {
    for await (const _ of client.controlStream(requests, token ? { headers: { authorization: `Bearer ${token}` } } : {})) {
      // Refusals end the stream before any message.
    }
    return undefined;
  } catch (err) {
    return ConnectError.from(err);
  }
}

describe.each(CLIENTS)("ControlStream over $name", ({ transport, wire }) => {
  it("welcomes, delivers a tenant-wide notice once, takes its ack, and ends with GoAway REVOKED", async () => {
    const agent = await enrollAgent(gw);
    const peer = await enrollAgent(gw);
    const stream = openStream(gatewayClient(transport()), agent.session);
    expect((await stream.next()).kind.case).toBe("welcome");
    await gw.admin(AgentService).revokeAgent({ id: peer.registration.agentId, reason: "test" });
    const notice = await stream.next();
    if (notice.kind.case !== "command" || notice.kind.value.payload.case !== "peerRevoked") throw new Error(`expected peerRevoked, got ${notice.kind.case}`);
    expect(notice.kind.value.payload.value.agentId).toBe(peer.registration.agentId);
    stream.send(ackOf(notice.kind.value.sequence));
    await vi.waitFor(async () => {
      await gw.gateway.context.control.flushAcks();
      const { commands } = await gw.admin(AgentService).listAgentCommands({ agentId: agent.registration.agentId, pendingOnly: true });
      expect(commands).toEqual([]);
    });
    await gw.admin(AgentService).revokeAgent({ id: agent.registration.agentId, reason: "test" });
    const goAway = await stream.next();
    expect(goAway.kind.case === "goAway" && goAway.kind.value.reason).toBe(GoAwayReason.REVOKED);
    expect(await stream.ended).toBeUndefined();
  });

  it("refuses a call without a session, a first message that is not a hello, a value no column can store, and a protovalidate violation", async () => {
    const agent = await enrollAgent(gw);
    const t = transport();
    const hello = { kind: { case: "hello" as const, value: { agentVersion: "1.0.0", lastAppliedSequence: 0n } } };
    expect((await refusal(t, undefined, [hello]))?.code).toBe(Code.Unauthenticated);
    expect((await refusal(t, "agws_not-a-session-token", [hello]))?.code).toBe(Code.Unauthenticated);
    expect((await refusal(t, agent.session.token, [{ kind: { case: "pong", value: { nonce: 1n } } }]))?.code).toBe(Code.InvalidArgument);
    const nul = await refusal(t, agent.session.token, [{ kind: { case: "hello", value: { agentVersion: "1.0\u0000", lastAppliedSequence: 0n } } }]);
    expect(nul?.code).toBe(Code.InvalidArgument);
    expect(nul?.rawMessage).toMatch(/agent_version|agentVersion/);
    const long = await refusal(t, agent.session.token, [{ kind: { case: "hello", value: { agentVersion: "v".repeat(65), lastAppliedSequence: 0n } } }]);
    expect(long?.code).toBe(Code.InvalidArgument);
    // An ack after the hello is checked too: sequence must be > 0.
    expect((await refusal(t, agent.session.token, [hello, ackOf(0n)]))?.code).toBe(Code.InvalidArgument);
  });

  it(`refuses a message over the size limit with ResourceExhausted${wire ? "" : " (connect-node's readMaxBytes)"}`, async () => {
    const agent = await enrollAgent(gw);
    const big = { kind: { case: "hello" as const, value: { agentVersion: "1", capabilities: Array.from({ length: 2000 }, () => "c".repeat(60)), lastAppliedSequence: 0n } } };
    expect((await refusal(transport(), agent.session.token, [big]))?.code).toBe(Code.ResourceExhausted);
  });

  it("caps the streams one agent holds open (here 1), with the streams_per_credential refusal", async () => {
    const agent = await enrollAgent(gw);
    const first = openStream(gatewayClient(transport()), agent.session);
    expect((await first.next()).kind.case).toBe("welcome");
    const second = openStream(gatewayClient(transport()), agent.session);
    const err = ConnectError.from(await second.ended);
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toMatch(/open streams/);
    first.close();
    await first.ended;
    // The slot is released when the first stream ends, whichever transport held it.
    await vi.waitFor(async () => {
      const third = openStream(gatewayClient(transport()), agent.session);
      try {
        expect((await third.next()).kind.case).toBe("welcome");
      } finally {
        third.close();
        await third.ended;
      }
    });
  });
});

describe("the wire path against raw HTTP/2 frames", () => {
  /** Sends raw bytes as a Connect streaming ControlStream request; resolves with the end-of-stream JSON. */
  async function rawConnect(token: string, body: Buffer): Promise<{ error?: { code?: string; message?: string } }> {
    const session = http2.connect(gw.url);
    try {
      const stream = session.request({
        ":method": "POST",
        ":path": "/agentgateway.v1.AgentGatewayService/ControlStream",
        "content-type": "application/connect+proto",
        authorization: `Bearer ${token}`,
      });
      stream.write(body);
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      // The client never ends its side: after its refusal the gateway must close the stream
      // (RST_STREAM NO_ERROR), or a client could hold refused streams open for ever.
      await new Promise<void>((resolve, reject) => {
        stream.on("close", resolve);
        stream.on("error", reject);
      });
      const all = Buffer.concat(chunks);
      // The last envelope is the end-of-stream message (flag 0x02).
      let offset = 0;
      let last: Buffer | undefined;
      while (offset + 5 <= all.length) {
        const length = all.readUInt32BE(offset + 1);
        if ((all.readUInt8(offset) & 0x02) !== 0) last = all.subarray(offset + 5, offset + 5 + length);
        offset += 5 + length;
      }
      return JSON.parse(last?.toString("utf8") ?? "{}");
    } finally {
      session.close();
    }
  }

  const frame = (flags: number, bytes: Uint8Array) => {
    const out = Buffer.alloc(5 + bytes.length);
    out.writeUInt8(flags, 0);
    out.writeUInt32BE(bytes.length, 1);
    out.set(bytes, 5);
    return out;
  };

  it("refuses bytes that are not a message, a compressed flag without an encoding, and a length prefix past the limit before its body arrives", async () => {
    const agent = await enrollAgent(gw);
    expect((await rawConnect(agent.session.token, frame(0, Buffer.from([0xff, 0xff, 0xff, 0xff])))).error?.code).toBe("invalid_argument");
    const hello = toBinary(ControlStreamRequestSchema, create(ControlStreamRequestSchema, { kind: { case: "hello", value: { agentVersion: "1", lastAppliedSequence: 0n } } }));
    expect((await rawConnect(agent.session.token, frame(1, hello))).error?.code).toBe("invalid_argument");
    // Only the 5-byte prefix announcing 1 GiB is sent: the refusal must not wait for (or buffer) the body.
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(1 << 30, 1);
    expect((await rawConnect(agent.session.token, prefix)).error?.code).toBe("resource_exhausted");
    // And the session is still good for a well-formed stream.
    const ok = openStream(gatewayClient(gw.transport), agent.session);
    expect((await ok.next()).kind.case).toBe("welcome");
    ok.close();
    await ok.ended;
  });

  it("ends a stream that sends no hello within 10 s with INVALID_ARGUMENT, and closes it", async () => {
    const agent = await enrollAgent(gw);
    const started = Date.now();
    // Authenticated and open, but silent: it must not hold its slot (and the credential's stream cap) for ever.
    const refused = await rawConnect(agent.session.token, Buffer.alloc(0));
    expect(refused.error?.code).toBe("invalid_argument");
    expect(refused.error?.message).toMatch(/hello/);
    // Not before the hello timeout (control-session.ts HELLO_TIMEOUT_MS).
    expect(Date.now() - started).toBeGreaterThanOrEqual(9_000);
  }, 30_000);

  it("sends the ErrorInfo reason in gRPC trailers (a revoked agent's session)", async () => {
    const agent = await enrollAgent(gw);
    await gw.admin(AgentService).revokeAgent({ id: agent.registration.agentId, reason: "test" });
    const err = await refusal(createGrpcTransport({ baseUrl: gw.url }), agent.session.token, [{ kind: { case: "hello", value: { agentVersion: "1", lastAppliedSequence: 0n } } }]);
    expect(err?.code === Code.Unauthenticated || err?.code === Code.PermissionDenied).toBe(true);
    expect(reasonOf(err)).toBeTruthy();
  });
});
