import http2 from "node:http2";
import { create, type DescMethodUnary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { codeFromString } from "@connectrpc/connect/protocol-connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GatewayClient, gatewayClient, withSession } from "../agent/lib/direct.js";
import { sign } from "../client/protocol/ed25519.js";
import { authTranscript } from "../client/protocol/transcript.js";
import { Reason, reasonOf } from "../client/reasons.js";
import { TenantService } from "../gen/agentgateway/provider/v1/tenants_pb.js";
import { AgentGatewayService } from "../gen/agentgateway/v1/gateway_pb.js";
import { EventSeverity } from "../gen/agentgateway/v1/ingest_pb.js";
import { WIRE_UNARY_METHODS } from "../server/app/routes.js";
import { type EnrolledAgent, enrollAgent } from "./support/agents.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";
import { createTenantViaProvider, enrollInto } from "./support/tenants.js";

// The agents' hot unary calls have two transports: server/wire/wire-unary.ts beneath
// connect-node for binary, uncompressed Connect and gRPC without a deadline, connect-node for
// the rest. Every case runs over every wire-served method (read from the list the gateway
// serves, so a method added there is covered here) through both paths — a deadline header is
// what sends a call to connect-node — and the outcomes must be the same: the same answers, the
// same refusals with the same codes, messages and details, the request id on both.

type MethodName = (typeof WIRE_UNARY_METHODS)[number];
const MAX_MESSAGE_BYTES = 64 * 1024;
let gw: TestGateway;

beforeAll(async () => {
  // Every case handshakes over four paths: the per-agent handshake budget must not be what answers.
  gw = await startTestGateway({ maxMessageBytes: String(MAX_MESSAGE_BYTES), handshakeRatePerAgent: "1000/s:1000" });
});
afterAll(async () => {
  await gw?.stop();
});

/** The clients of each path: the wire path serves the first two, connect-node the others. */
const PATHS: Array<{ name: string; wire: boolean; protocol: "connect" | "grpc"; transport: () => Transport }> = [
  {
    name: "wire, Connect",
    wire: true,
    protocol: "connect",
    transport: () => createConnectTransport({ baseUrl: gw.url, httpVersion: "2", useBinaryFormat: true }),
  },
  { name: "wire, gRPC", wire: true, protocol: "grpc", transport: () => createGrpcTransport({ baseUrl: gw.url }) },
  {
    name: "connect-node, Connect",
    wire: false,
    protocol: "connect",
    transport: () => createConnectTransport({ baseUrl: gw.url, httpVersion: "2", useBinaryFormat: true, defaultTimeoutMs: 60_000 }),
  },
  { name: "connect-node, gRPC", wire: false, protocol: "grpc", transport: () => createGrpcTransport({ baseUrl: gw.url, defaultTimeoutMs: 60_000 }) },
];

/** A valid request of each method for `agent` (Complete needs a fresh challenge, asked for over the same client). */
const VALID: Record<MethodName, (agent: EnrolledAgent, client: GatewayClient) => Promise<object>> = {
  beginAuthHandshake: async (agent) => ({ agentId: agent.registration.agentId, identityPublicKey: agent.identity.publicKey }),
  completeAuthHandshake: async (agent, client) => {
    const { agentId } = agent.registration;
    const challenge = await client.beginAuthHandshake({ agentId, identityPublicKey: agent.identity.publicKey });
    const signature = sign(
      agent.identity.privateKey,
      authTranscript({ challengeId: challenge.challengeId, nonce: challenge.nonce, agentId, publicKey: agent.identity.publicKey }),
    );
    return { challengeId: challenge.challengeId, agentId, signature };
  },
  uploadHeartbeat: async () => ({ agentVersion: "1.2.3" }),
  uploadTelemetry: async () => ({
    points: [{ id: crypto.randomUUID(), name: "cpu.utilization", value: 0.5, labels: { core: "0" }, observedAt: timestampFromMs(Date.now()) }],
  }),
  uploadEvents: async () => ({
    events: [{ id: crypto.randomUUID(), type: "process.crashed", severity: EventSeverity.ERROR, message: "m", occurredAt: timestampFromMs(Date.now()) }],
  }),
};

/** A request every method refuses with INVALID_ARGUMENT (fields the others do not have are ignored). */
const INVALID = { agentId: "not a uuid", challengeId: "x", points: [{ id: "" }], events: [{ id: "" }], agentVersion: "v".repeat(10_000) };

const METHODS = WIRE_UNARY_METHODS.map((name) => ({ name, method: AgentGatewayService.method[name] as DescMethodUnary }));
const isAgentCall = (name: MethodName) => name.startsWith("upload");

/** Calls `name` with `request` and returns the answer or the error. */
async function outcome(
  client: GatewayClient,
  name: MethodName,
  request: object,
  headers: Record<string, string> = {},
): Promise<{ ok?: Record<string, unknown>; error?: ConnectError }> {
  const call = client[name] as (req: object, options: { headers: Record<string, string> }) => Promise<Record<string, unknown>>;
  try {
    return { ok: await call.call(client, request, { headers }) };
  } catch (err) {
    return { error: ConnectError.from(err) };
  }
}

/** What must be equal across paths: the code, the message, the detail types; or which fields the answer set. */
function comparable(o: { ok?: Record<string, unknown>; error?: ConnectError }) {
  if (o.error)
    return {
      code: Code[o.error.code],
      message: o.error.rawMessage,
      details: o.error.details.map((d) => ("desc" in d ? d.desc.typeName : d.type)),
      reason: reasonOf(o.error),
    };
  return {
    fields: Object.entries(o.ok ?? {})
      .filter(([k, v]) => k !== "$typeName" && v !== undefined && v !== "" && v !== 0)
      .map(([k]) => k)
      .sort(),
  };
}

describe.each(METHODS)("$name on both paths", ({ name }) => {
  let agent: EnrolledAgent;
  beforeAll(async () => {
    agent = await enrollAgent(gw);
  });

  it("answers a valid call the same way", async () => {
    const results = [];
    for (const path of PATHS) {
      const client = gatewayClient(path.transport());
      const result = await outcome(client, name, await VALID[name](agent, client), withSession(agent.session).headers);
      expect(result.error, path.name).toBeUndefined();
      results.push(comparable(result));
    }
    expect(results[0]?.fields?.length).toBeGreaterThan(0);
    for (const r of results) expect(r).toEqual(results[0]);
  });

  it("refuses the same way: no credential, a bogus session, an empty or invalid message", async () => {
    // A valid request is made again for each path: a handshake challenge answers only once.
    const valid = (client: GatewayClient) => VALID[name](agent, client);
    const cases: Array<{ request: (client: GatewayClient) => Promise<object>; headers: Record<string, string> }> = [
      { request: valid, headers: {} },
      { request: valid, headers: { authorization: "Bearer not-a-session" } },
      { request: async () => ({}), headers: withSession(agent.session).headers },
      { request: async () => INVALID, headers: withSession(agent.session).headers },
    ];
    for (const [i, c] of cases.entries()) {
      const results = [];
      for (const path of PATHS) {
        const client = gatewayClient(path.transport());
        results.push(comparable(await outcome(client, name, await c.request(client), c.headers)));
      }
      for (const r of results) expect(r, `case ${i}`).toEqual(results[0]);
      if (i < 2 && isAgentCall(name)) expect(results[0]?.code).toBe("Unauthenticated");
      if (i === 3) expect(results[0]?.code).toBe("InvalidArgument");
    }
  });

  it.each(PATHS)("echoes the caller's request id over $name, on an answer and on a refusal", async (path) => {
    const client = gatewayClient(path.transport());
    const id = `wire-test-${Math.random().toString(36).slice(2, 10)}`;
    let answered: string | null = null;
    await (client[name] as (r: object, o: object) => Promise<unknown>).call(client, await VALID[name](agent, client), {
      headers: { ...withSession(agent.session).headers, "x-request-id": id },
      onHeader: (h: Headers) => {
        answered = h.get("x-request-id");
      },
    });
    expect(answered).toBe(id);
    const refused = await outcome(client, name, INVALID, { ...withSession(agent.session).headers, "x-request-id": id });
    expect(refused.error?.metadata.get("x-request-id")).toBe(id);
  });
});

/** One request with raw bytes (unary Connect or gRPC envelopes) and its status. */
async function raw(protocol: "connect" | "grpc", path: string, body: Buffer, headers: Record<string, string>): Promise<{ code: string; message: string }> {
  const session = http2.connect(gw.url);
  try {
    const type = protocol === "connect" ? "application/proto" : "application/grpc";
    const req = session.request({ ":method": "POST", ":path": path, "content-type": type, ...(protocol === "grpc" ? { te: "trailers" } : {}), ...headers });
    let status = 0;
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on("response", (h) => {
      head = h;
      status = Number(h[":status"]);
    });
    req.on("trailers", (t) => {
      trailers = t;
    });
    req.on("data", (c: Buffer) => chunks.push(c));
    const ended = new Promise<void>((resolve, reject) => {
      req.on("end", resolve);
      req.on("error", reject);
    });
    req.end(body);
    await ended;
    if (protocol === "connect") {
      if (status === 200) return { code: "OK", message: "" };
      const json = JSON.parse(Buffer.concat(chunks).toString()) as { code: string; message: string };
      return { code: Code[codeFromString(json.code) ?? Code.Unknown], message: json.message };
    }
    const grpcStatus = Number(trailers["grpc-status"] ?? head["grpc-status"]);
    return { code: Code[grpcStatus] ?? "OK", message: decodeURIComponent(String(trailers["grpc-message"] ?? head["grpc-message"] ?? "")) };
  } finally {
    session.close();
  }
}

const frame = (bytes: Uint8Array, flags = 0) => {
  const out = Buffer.alloc(5 + bytes.length);
  out.writeUInt8(flags, 0);
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
};

/** The header that sends a raw call to connect-node instead of the wire path. */
const DEADLINE: Record<"connect" | "grpc", Record<string, string>> = { connect: { "connect-timeout-ms": "60000" }, grpc: { "grpc-timeout": "60S" } };

describe("raw bytes on both paths", () => {
  const heartbeat = "/agentgateway.v1.AgentGatewayService/UploadHeartbeat";
  let agent: EnrolledAgent;
  let auth: Record<string, string>;
  beforeAll(async () => {
    agent = await enrollAgent(gw);
    auth = withSession(agent.session).headers;
  });
  const valid = () =>
    Buffer.from(toBinary(AgentGatewayService.method.uploadHeartbeat.input, create(AgentGatewayService.method.uploadHeartbeat.input, { agentVersion: "1" })));

  it.each(["connect", "grpc"] as const)("%s: a message past the size limit is RESOURCE_EXHAUSTED on both", async (protocol) => {
    const big = Buffer.alloc(MAX_MESSAGE_BYTES + 1, 0);
    const body = protocol === "connect" ? big : frame(big);
    expect((await raw(protocol, heartbeat, body, auth)).code).toBe("ResourceExhausted");
    expect((await raw(protocol, heartbeat, body, { ...auth, ...DEADLINE[protocol] })).code).toBe("ResourceExhausted");
  });

  it("gRPC: no message, two messages or a cut-off one are refused the same way on both", async () => {
    for (const body of [Buffer.alloc(0), Buffer.concat([frame(valid()), frame(valid())]), frame(valid()).subarray(0, 7)]) {
      const wire = await raw("grpc", heartbeat, body, auth);
      const node = await raw("grpc", heartbeat, body, { ...auth, ...DEADLINE.grpc });
      expect(wire.code).not.toBe("OK");
      expect(wire).toEqual(node);
    }
  });

  it.each(["connect", "grpc"] as const)(
    "%s: bytes that are not the message are INVALID_ARGUMENT on the wire path (connect-node says INTERNAL)",
    async (protocol) => {
      const garbage = Buffer.from([0x0a, 0xff, 0xff, 0xff]);
      const body = protocol === "connect" ? garbage : frame(garbage);
      // The difference is deliberate (wire-unary.ts: the caller's fault is not a server error), and it
      // proves which path served each call.
      expect((await raw(protocol, heartbeat, body, auth)).code).toBe("InvalidArgument");
      expect((await raw(protocol, heartbeat, body, { ...auth, ...DEADLINE[protocol] })).code).toBe("Internal");
      // The valid bytes succeed on both.
      expect((await raw(protocol, heartbeat, protocol === "connect" ? valid() : frame(valid()), auth)).code).toBe("OK");
    },
  );

  it("a compressed flag without an encoding is refused on the wire path", async () => {
    expect((await raw("grpc", heartbeat, frame(valid(), 1), auth)).code).not.toBe("OK");
  });
});

describe("a suspended tenant's agent", () => {
  it("is refused with TENANT_SUSPENDED on every wire-served method but Begin (which writes nothing), on both paths", async () => {
    const tenant = await createTenantViaProvider(gw, "wire-suspended");
    const agent = await enrollInto(gw, tenant.adminKey);
    // One valid request per method and path, made before the suspension (a challenge answers once).
    const requests = new Map<string, object>();
    for (const { name } of METHODS) for (const path of PATHS) requests.set(`${name} ${path.name}`, await VALID[name](agent, gatewayClient(gw.transport)));
    await gw.admin(TenantService, gw.systemKey).suspendTenant({ id: tenant.tenantId, reason: "test" });
    for (const { name } of METHODS.filter((m) => m.name !== "beginAuthHandshake")) {
      for (const path of PATHS) {
        const result = await outcome(
          gatewayClient(path.transport()),
          name,
          requests.get(`${name} ${path.name}`) as MessageInitShape<typeof AgentGatewayService.method.uploadHeartbeat.input>,
          withSession(agent.session).headers,
        );
        expect(result.error?.code, `${name} over ${path.name}`).toBe(Code.PermissionDenied);
        expect(reasonOf(result.error as ConnectError)).toBe(Reason.TENANT_SUSPENDED);
      }
    }
  });
});
