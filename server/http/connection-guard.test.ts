// Caps on connections, with real sockets on a real listener (no database needed).
import * as net from "node:net";
import { connectNodeAdapter, createConnectTransport } from "@connectrpc/connect-node";
import { createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { HealthStatus, ServingStatus, registerHealth } from "../grpc/health.js";
import { DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from "./connection-guard.js";
import { listen, type Listener } from "./listener.js";

const open: Listener[] = [];
const sockets: net.Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(open.splice(0).map((l) => l.close(0)));
});

async function start(limits: Partial<ConnectionLimits>): Promise<Listener> {
  const health = new HealthStatus();
  health.set("", ServingStatus.SERVING);
  const listener = await listen({
    host: "127.0.0.1",
    port: 0,
    handler: connectNodeAdapter({ routes: (router) => registerHealth(router, health) }),
    limits: { ...DEFAULT_CONNECTION_LIMITS, ...limits },
  });
  open.push(listener);
  return listener;
}

/** Opens a socket and reports whether the server hung up on it within `ms`. */
async function connectAndWatch(listener: Listener, ms: number): Promise<boolean> {
  const socket = net.connect({ host: "127.0.0.1", port: listener.address.port });
  sockets.push(socket);
  socket.on("error", () => {});
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function healthy(listener: Listener): Promise<boolean> {
  const client = createClient(Health, createConnectTransport({ baseUrl: listener.url, httpVersion: "1.1" }));
  try {
    return (await client.check({})).status === 1;
  } catch {
    return false;
  }
}

describe("connection caps", () => {
  it("refuses connections past the per-source cap and admits again when one closes", async () => {
    const listener = await start({ maxConnectionsPerSource: 5, maxConnections: 0 });
    const held = await Promise.all(Array.from({ length: 5 }, () => connectAndWatch(listener, 300)));
    expect(held).toEqual([false, false, false, false, false]);
    expect(await connectAndWatch(listener, 2_000)).toBe(true);
    expect(listener.guard.stats.refusedSourceCap).toBe(1);
    expect(await healthy(listener)).toBe(false);
    sockets[0]!.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await healthy(listener)).toBe(true);
  });

  it("refuses connections past the total cap", async () => {
    const listener = await start({ maxConnections: 3, maxConnectionsPerSource: 0 });
    const held = await Promise.all(Array.from({ length: 3 }, () => connectAndWatch(listener, 300)));
    expect(held).toEqual([false, false, false]);
    expect(await connectAndWatch(listener, 2_000)).toBe(true);
    expect(listener.guard.stats.refusedTotalCap).toBe(1);
    expect(listener.guard.stats.refusedSourceCap).toBe(0);
  });

  it("closes a connection that sends nothing, after the first-request timeout only", async () => {
    const listener = await start({ firstRequestTimeoutMs: 200 });
    expect(await connectAndWatch(listener, 3_000)).toBe(true);
    expect(listener.guard.stats.closedBeforeFirstRequest).toBe(1);
    expect(await healthy(listener)).toBe(true);
  });
});
