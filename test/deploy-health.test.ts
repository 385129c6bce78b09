import * as http2 from "node:http2";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase } from "./support/database.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";

// HTTP /healthz and /readyz on the gateway's one port (issue 15, item 3), against a real
// gateway on real PostgreSQL: what Kubernetes probes and the load balancers in deploy/ ask.

let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway();
});

afterAll(async () => {
  await gw?.stop();
});

async function get(url: string, init: RequestInit = {}): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

function h2get(base: string, path: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(base);
    session.on("error", reject);
    const req = session.request({ ":path": path, ":method": "GET" });
    let status = 0;
    let text = "";
    req.on("response", (headers) => {
      status = Number(headers[":status"]);
    });
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => {
      text += chunk;
    });
    req.on("end", () => {
      session.close();
      resolve({ status, body: JSON.parse(text) });
    });
    req.on("error", reject);
    req.end();
  });
}

/** Polls /readyz until its status is `status` (the verdict is cached for about a second). */
async function readyzUntil(url: string, status: number): Promise<{ status: number; body: unknown }> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const res = await get(`${url}/readyz`);
    if (res.status === status || Date.now() > deadline) return res;
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("/healthz and /readyz", () => {
  it("answer over HTTP/1.1 and HTTP/2 on the RPC port, with every check named", async () => {
    expect(await get(`${gw.url}/healthz`)).toEqual({ status: 200, body: { alive: true } });
    const ready = { status: 200, body: { ready: true, checks: { database: "ok", migrations: "ok", bus: "ok", draining: "no" } } };
    expect(await get(`${gw.url}/readyz`)).toEqual(ready);
    expect(await h2get(gw.url, "/readyz")).toEqual(ready);
    expect(await h2get(gw.url, "/healthz")).toEqual({ status: 200, body: { alive: true } });
    const head = await fetch(`${gw.url}/readyz`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
  });

  it("refuse other methods, and leave every other path to the RPC router", async () => {
    const post = await fetch(`${gw.url}/readyz`, { method: "POST", body: "{}" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    expect((await fetch(`${gw.url}/readyz/extra`)).status).toBe(404);
    expect((await fetch(`${gw.url}/healthzz`)).status).toBe(404);
  });

  it("report not ready while a migration this code needs is missing, and ready again once it is back", async () => {
    const client = new pg.Client({ connectionString: gw.database.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ name: string; timestamp: string }>("delete from kysely_migration where name = (select max(name) from kysely_migration) returning name, timestamp");
      const removed = rows[0];
      if (!removed) throw new Error("no migration row to remove");
      const notReady = await readyzUntil(gw.url, 503);
      expect(notReady).toEqual({ status: 503, body: { ready: false, checks: { database: "ok", migrations: "pending", bus: "ok", draining: "no" } } });
      // Liveness is not readiness: the process is fine, a restart would not help.
      expect((await get(`${gw.url}/healthz`)).status).toBe(200);
      await client.query("insert into kysely_migration (name, timestamp) values ($1, $2)", [removed.name, removed.timestamp]);
      expect((await readyzUntil(gw.url, 200)).status).toBe(200);
    } finally {
      await client.end();
    }
  });

  it("report the database as failed, without its error text, when it is gone", async () => {
    const database = await createTestDatabase();
    const other = await startTestGateway({}, database);
    try {
      expect((await get(`${other.url}/readyz`)).status).toBe(200);
      await database.drop();
      const res = await readyzUntil(other.url, 503);
      // The bus's LISTEN connection dies with the database too; whether it is seen yet is a race.
      expect(res).toEqual({ status: 503, body: { ready: false, checks: { database: "failed", migrations: "failed", bus: expect.stringMatching(/^(ok|disconnected)$/), draining: "no" } } });
      expect((await get(`${other.url}/healthz`)).status).toBe(200);
    } finally {
      await other.gateway.stop().catch(() => {});
    }
  });

  it("turn not ready the moment the gateway starts draining", async () => {
    const database = await createTestDatabase();
    const other = await startTestGateway({}, database);
    try {
      // Keep one HTTP/2 connection open: it outlives the listener's close, as a load balancer's would.
      const session = http2.connect(other.url);
      await new Promise<void>((resolve) => session.once("connect", () => resolve()));
      other.gateway.context.health.shutdown();
      const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = session.request({ ":path": "/readyz" });
        let status = 0;
        let body = "";
        req.on("response", (h) => {
          status = Number(h[":status"]);
        });
        req.on("data", (c: Buffer) => {
          body += c.toString();
        });
        req.on("end", () => resolve({ status, body }));
        req.on("error", reject);
        req.end();
      });
      session.close();
      expect(res.status).toBe(503);
      expect(JSON.parse(res.body)).toEqual({ ready: false, checks: { draining: "yes" } });
    } finally {
      await other.stop();
    }
  });
});
