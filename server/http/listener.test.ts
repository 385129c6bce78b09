import * as net from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Transport } from "@connectrpc/connect";
import {
  connectNodeAdapter,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { createTestCertificates } from "../../test/support/certificates.js";
import { HealthStatus, ServingStatus, registerHealth } from "../grpc/health.js";
import { listen } from "./listener.js";
import type { ListenTlsOptions, Listener } from "./listener.js";

interface Server {
  listener: Listener;
  health: HealthStatus;
  /** "<http version> <content-type>" of every request, in arrival order. */
  seen: string[];
}

const open: Listener[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((listener) => listener.close(0)));
});

/**
 * A gateway-like server with only the health service. A request with an `x-test-delay`
 * header reaches the handler that many milliseconds late, to have something in flight.
 */
async function startServer(tls?: ListenTlsOptions): Promise<Server> {
  const health = new HealthStatus();
  health.set("", ServingStatus.SERVING);
  const handler = connectNodeAdapter({ routes: (router) => registerHealth(router, health) });
  const seen: string[] = [];
  const listener = await listen({
    host: "127.0.0.1",
    port: 0,
    tls,
    handler: (req, res) => {
      seen.push(`${req.httpVersion} ${req.headers["content-type"] ?? ""}`);
      const delay = Number(req.headers["x-test-delay"] ?? 0);
      setTimeout(() => handler(req, res), delay);
    },
  });
  open.push(listener);
  return { listener, health, seen };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The four ways our clients reach the gateway, each on its own connection. */
function transports(baseUrl: string, nodeOptions: { ca?: string } = {}) {
  return {
    "connect h2": createConnectTransport({ baseUrl, httpVersion: "2", nodeOptions }),
    "grpc h2": createGrpcTransport({ baseUrl, nodeOptions }),
    "connect http/1.1": createConnectTransport({ baseUrl, httpVersion: "1.1", nodeOptions }),
    "grpc-web http/1.1": createGrpcWebTransport({ baseUrl, httpVersion: "1.1", nodeOptions }),
  };
}

const expectedProtocols = [
  "2.0 application/proto",
  "2.0 application/grpc+proto",
  "1.1 application/proto",
  "1.1 application/grpc-web+proto",
];

/** Starts a Watch and resolves once its first message arrived; `ended` settles when it ends. */
async function startWatch(transport: Transport): Promise<{ statuses: ServingStatus[]; ended: Promise<unknown> }> {
  const statuses: ServingStatus[] = [];
  let first: () => void = () => {};
  const firstSeen = new Promise<void>((resolve) => {
    first = resolve;
  });
  const ended = (async () => {
    for await (const { status } of createClient(Health, transport).watch({})) {
      statuses.push(status);
      first();
    }
  })().then(
    () => "ok",
    (error: unknown) => ConnectError.from(error),
  );
  await Promise.race([firstSeen, ended]);
  return { statuses, ended };
}

describe("listen", () => {
  it("serves Connect and gRPC over HTTP/2 and Connect and gRPC-Web over HTTP/1.1 on one port", async () => {
    const { listener, seen } = await startServer();
    expect(listener.url).toBe(`http://127.0.0.1:${listener.address.port}`);
    expect(listener.address.port).toBeGreaterThan(0);
    for (const [name, transport] of Object.entries(transports(listener.url))) {
      const response = await createClient(Health, transport).check({});
      expect(response.status, name).toBe(ServingStatus.SERVING);
    }
    expect(seen).toEqual(expectedProtocols);
  });

  it("serves both HTTP versions with TLS, chosen by ALPN", async () => {
    const { ca, server } = createTestCertificates();
    const { listener, seen } = await startServer({ cert: server.cert, key: server.key });
    expect(listener.url).toBe(`https://127.0.0.1:${listener.address.port}`);
    for (const [name, transport] of Object.entries(transports(listener.url, { ca: ca.cert }))) {
      const response = await createClient(Health, transport).check({});
      expect(response.status, name).toBe(ServingStatus.SERVING);
    }
    expect(seen).toEqual(expectedProtocols);
  });

  it("waits for more bytes when the first packets do not tell the protocol yet", async () => {
    const { listener, seen } = await startServer();
    const proxy = await trickleProxy(listener.address.port);
    try {
      const url = `http://127.0.0.1:${proxy.port}`;
      const { "grpc h2": grpc, "connect http/1.1": http1 } = transports(url);
      expect((await createClient(Health, grpc).check({})).status).toBe(ServingStatus.SERVING);
      expect((await createClient(Health, http1).check({})).status).toBe(ServingStatus.SERVING);
      expect(seen).toEqual(["2.0 application/grpc+proto", "1.1 application/proto"]);
    } finally {
      proxy.server.close();
    }
  });

  it("reports the bind error for a port in use", async () => {
    const { listener } = await startServer();
    await expect(listen({ host: "127.0.0.1", port: listener.address.port, handler: () => {} })).rejects.toThrow(
      /EADDRINUSE/,
    );
  });
});

describe("Listener.close", () => {
  it("ends in-flight Watch streams once the grace period is over", async () => {
    const { listener } = await startServer();
    const { "grpc h2": h2, "connect http/1.1": http1 } = transports(listener.url);
    const watches = [await startWatch(h2), await startWatch(http1)];
    for (const watch of watches) {
      expect(watch.statuses).toEqual([ServingStatus.SERVING]);
    }
    const started = Date.now();
    await listener.close(200);
    const results = await Promise.all(watches.map((watch) => watch.ended));
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    for (const result of results) {
      // The server is gone mid-stream: the client sees an error, not a hang.
      expect(result).toBeInstanceOf(ConnectError);
    }
  });

  it("finishes early when health.shutdown() has ended the watchers", async () => {
    const { listener, health } = await startServer();
    const watch = await startWatch(transports(listener.url)["grpc h2"]);
    const started = Date.now();
    health.shutdown();
    await listener.close(10_000);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(await watch.ended).toBe("ok");
    expect(watch.statuses).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
  });

  it("lets in-flight requests finish within the grace period", async () => {
    const { listener } = await startServer();
    const calls = Object.entries(transports(listener.url)).map(async ([name, transport]) => {
      const response = await createClient(Health, transport).check({}, { headers: { "x-test-delay": "300" } });
      return `${name}: ${ServingStatus[response.status]}`;
    });
    await sleep(100);
    await listener.close(5_000);
    expect(await Promise.all(calls)).toEqual([
      "connect h2: SERVING",
      "grpc h2: SERVING",
      "connect http/1.1: SERVING",
      "grpc-web http/1.1: SERVING",
    ]);
  });

  it("does not wait for idle keep-alive connections or silent sockets", async () => {
    const { listener } = await startServer();
    for (const transport of Object.values(transports(listener.url))) {
      await createClient(Health, transport).check({});
    }
    const silent = net.connect(listener.address.port, "127.0.0.1");
    await new Promise((resolve) => silent.once("connect", resolve));
    const silentClosed = new Promise((resolve) => silent.once("close", resolve));
    const started = Date.now();
    await listener.close(10_000);
    expect(Date.now() - started).toBeLessThan(1_000);
    await silentClosed;
  });

  it("refuses new connections afterwards", async () => {
    const { listener } = await startServer();
    await listener.close(1_000);
    const error = await createClient(Health, transports(listener.url)["connect http/1.1"])
      .check({})
      .catch((e: unknown) => ConnectError.from(e));
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.Unavailable);
    await listener.close(1_000);
  });
});

/**
 * A TCP proxy that forwards the first bytes of each connection one at a time, so the
 * listener sees "P", "R", "I" (or "P", "O", "S") as separate reads.
 */
async function trickleProxy(targetPort: number): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, "127.0.0.1");
    upstream.setNoDelay(true);
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
    upstream.pipe(client);
    client.once("data", (chunk: Buffer) => {
      client.pause();
      void (async () => {
        for (let i = 0; i < 6 && i < chunk.length; i++) {
          upstream.write(chunk.subarray(i, i + 1));
          await sleep(15);
        }
        upstream.write(chunk.subarray(6));
        client.pipe(upstream);
        client.resume();
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as net.AddressInfo;
  return { server, port: address.port };
}
