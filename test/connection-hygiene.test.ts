// Connection hygiene on the one port (issue 11 item 6), against the real gateway: sockets that
// never finish a request are closed by the gateway while real calls go on.
import * as http2 from "node:http2";
import * as net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyService } from "../gen/agentgateway/admin/v1/api_keys_pb.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";

const FIRST_REQUEST_TIMEOUT_MS = 400;
const IDLE_TIMEOUT_MS = 600;

let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway({ firstRequestTimeout: `${FIRST_REQUEST_TIMEOUT_MS}ms`, idleTimeout: `${IDLE_TIMEOUT_MS}ms` });
});

afterAll(async () => {
  await gw?.stop();
});

/** A raw socket to the gateway that resolves `closed` when the gateway hangs up. */
async function rawSocket(first?: string | Buffer): Promise<{ socket: net.Socket; closed: Promise<void>; received: () => string }> {
  const { port } = gw.gateway.address;
  const socket = net.connect({ host: "127.0.0.1", port });
  let data = "";
  socket.on("data", (chunk) => {
    data += chunk.toString("latin1");
  });
  socket.on("error", () => {});
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  if (first !== undefined) socket.write(first);
  return { socket, closed, received: () => data };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("connection hygiene", () => {
  it("closes 50 half-open sockets (silent, partial HTTP/1.1 head, bare HTTP/2 preface) while real calls go on", async () => {
    const before = gw.gateway.connections.closedBeforeFirstRequest;
    const sockets = await Promise.all(
      Array.from({ length: 50 }, (_, i) => {
        if (i % 3 === 0) return rawSocket();
        if (i % 3 === 1) return rawSocket("POST /agentgateway.admin.v1.ApiKeyService/WhoAmI HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n");
        return rawSocket("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
      }),
    );
    // Real calls on their own connections keep being answered meanwhile.
    let answered = 0;
    let allClosed = false;
    const closing = Promise.all(sockets.map((s) => s.closed)).then(() => {
      allClosed = true;
    });
    while (!allClosed && answered < 200) {
      const me = await gw.admin(ApiKeyService).whoAmI({});
      expect(me.tenantId).not.toBe("");
      answered++;
      await sleep(20);
    }
    await closing;
    expect(answered).toBeGreaterThan(0);
    expect(gw.gateway.connections.closedBeforeFirstRequest - before).toBeGreaterThanOrEqual(50);
    // The partial heads got no response at all: they were cut, not answered.
    for (const [i, s] of sockets.entries()) if (i % 3 === 1) expect(s.received()).toBe("");
  }, 20_000);

  it("cuts an HTTP/1.1 request whose body never finishes", async () => {
    const before = gw.gateway.connections.closedSlowBody;
    const s = await rawSocket(
      "POST /agentgateway.admin.v1.ApiKeyService/WhoAmI HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
    );
    // Keep trickling bytes, as a slowloris does, so only the body deadline can end it.
    const trickle = setInterval(() => s.socket.write(" "), 50);
    await s.closed;
    clearInterval(trickle);
    expect(gw.gateway.connections.closedSlowBody - before).toBe(1);
  }, 20_000);

  it("closes an idle HTTP/1.1 keep-alive connection after its last response", async () => {
    const before = gw.gateway.connections.closedIdle;
    const s = await rawSocket("GET /healthz-does-not-exist HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    await s.closed;
    expect(s.received()).toMatch(/^HTTP\/1\.1 \d{3}/);
    // Other idle connections of this file may be closed in the same window; this one was among them.
    expect(gw.gateway.connections.closedIdle - before).toBeGreaterThanOrEqual(1);
  }, 20_000);

  it("sends GOAWAY to an HTTP/2 session with no open stream, and announces its stream cap", async () => {
    const before = gw.gateway.connections.closedIdle;
    const session = http2.connect(gw.url);
    session.on("error", () => {});
    const settings = await new Promise<http2.Settings>((resolve) => session.once("remoteSettings", resolve));
    expect(settings.maxConcurrentStreams).toBe(100);
    const goaway = new Promise<void>((resolve) => session.once("goaway", () => resolve()));
    const req = session.request({ ":method": "GET", ":path": "/not-a-route" });
    req.resume();
    await new Promise<void>((resolve) => req.once("close", () => resolve()));
    await goaway;
    expect(gw.gateway.connections.closedIdle - before).toBeGreaterThanOrEqual(1);
    session.destroy();
  }, 20_000);

  it("keeps a connection whose stream stays open past the idle timeout", async () => {
    const session = http2.connect(gw.url);
    session.on("error", () => {});
    let goaway = false;
    session.once("goaway", () => {
      goaway = true;
    });
    // A server stream that the gateway holds open: gRPC health Watch.
    const req = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Watch", "content-type": "application/grpc", te: "trailers" });
    req.end(Buffer.from([0, 0, 0, 0, 0]));
    let frames = 0;
    req.on("data", () => {
      frames++;
    });
    await sleep(IDLE_TIMEOUT_MS * 3);
    expect(frames).toBeGreaterThan(0);
    expect(goaway).toBe(false);
    expect(req.closed).toBe(false);
    req.close();
    session.destroy();
  }, 20_000);
});
