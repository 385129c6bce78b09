import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_CSP, adminConsole, DEFAULT_ADMIN_DIST } from "../server/http/admin-static.js";
import { listen, type Listener } from "../server/http/listener.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";

let gw: TestGateway;
let withCors: TestGateway;
const consoleOrigin = "https://console.example.com";

/** Sends one raw HTTP/1.1 request, so paths reach the server exactly as written (fetch would normalise `..`). */
async function raw(url: string, path: string, method = "GET"): Promise<{ status: number; head: string; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => {
      socket.write(`${method} ${path} HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`);
    });
    let data = "";
    socket.setEncoding("latin1");
    socket.on("data", (chunk) => {
      data += chunk;
    });
    socket.on("error", reject);
    socket.on("end", () => {
      const split = data.indexOf("\r\n\r\n");
      const head = data.slice(0, split);
      resolve({ status: Number(head.split(" ")[1]), head: head.toLowerCase(), body: data.slice(split + 4) });
    });
  });
}

const asset = (ext: string) => {
  const name = readdirSync(join(DEFAULT_ADMIN_DIST, "assets")).find((f) => f.endsWith(ext));
  if (!name) throw new Error(`web/dist has no ${ext} asset: run npm run build:web`);
  return `/admin/assets/${name}`;
};

beforeAll(async () => {
  gw = await startTestGateway();
  withCors = await startTestGateway({ corsOrigins: `${consoleOrigin}, http://localhost:5173` }, gw.database);
}, 60_000);

afterAll(async () => {
  await withCors?.stop();
  await gw?.stop();
});

describe("the web admin's files at /admin/", () => {
  it("serves index.html with no-cache, the CSP and the security headers", async () => {
    const res = await fetch(`${gw.url}/admin/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-cache");
    expect(res.headers.get("content-security-policy")).toBe(ADMIN_CSP);
    expect(ADMIN_CSP).toContain("frame-ancestors 'none'");
    expect(ADMIN_CSP).toContain("script-src 'self'");
    expect(ADMIN_CSP).not.toContain("unsafe-inline");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    const html = await res.text();
    expect(html).toContain('<div id="root">');
    // No inline script: every <script> has a src.
    expect(html.match(/<script(?![^>]*\bsrc=)[^>]*>/g)).toBeNull();
  });

  it("serves hashed assets as immutable with their content type, gzip when asked, and 304 for a known ETag", async () => {
    const js = await fetch(`${gw.url}${asset(".js")}`);
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(js.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    const css = await fetch(`${gw.url}${asset(".css")}`);
    expect(css.headers.get("content-type")).toBe("text/css; charset=utf-8");
    const zipped = await raw(gw.url, asset(".js"));
    expect(zipped.head).not.toContain("content-encoding");
    const gz = await new Promise<Buffer>((resolve, reject) => {
      const { hostname, port } = new URL(gw.url);
      const s = net.connect(Number(port), hostname, () => s.write(`GET ${asset(".js")} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n`));
      const chunks: Buffer[] = [];
      s.on("data", (c: Buffer) => chunks.push(c));
      s.on("error", reject);
      s.on("end", () => {
        const all = Buffer.concat(chunks);
        const split = all.indexOf("\r\n\r\n");
        expect(all.subarray(0, split).toString("latin1").toLowerCase()).toContain("content-encoding: gzip");
        resolve(all.subarray(split + 4));
      });
    });
    expect(gunzipSync(gz).toString("utf8")).toBe(await (await fetch(`${gw.url}${asset(".js")}`)).text());
    const etag = js.headers.get("etag") ?? "";
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{22}"$/);
    const again = await fetch(`${gw.url}${asset(".js")}`, { headers: { "if-none-match": etag } });
    expect(again.status).toBe(304);
  });

  it("answers the app's own routes with index.html, a missing file with 404, /admin with a redirect", async () => {
    const route = await fetch(`${gw.url}/admin/agents/6b0c7a8e-0000-4000-8000-000000000000`);
    expect(route.status).toBe(200);
    expect(await route.text()).toContain('<div id="root">');
    expect((await fetch(`${gw.url}/admin/assets/missing-0000.js`)).status).toBe(404);
    const bare = await fetch(`${gw.url}/admin`, { redirect: "manual" });
    expect(bare.status).toBe(308);
    expect(bare.headers.get("location")).toBe("/admin/");
  });

  it("refuses path traversal in every spelling, and never serves a file from outside web/dist", async () => {
    for (const path of [
      "/admin/../package.json",
      "/admin/assets/../../package.json",
      "/admin/%2e%2e/package.json",
      "/admin/%2E%2E/%2E%2E/package.json",
      "/admin/..%2fpackage.json",
      "/admin/assets%2f..%2f..%2fpackage.json",
      "/admin/..\\package.json",
      "/admin/%5c..%5cpackage.json",
      "/admin/%00index.html",
      "/admin/%E0%A4%A.js",
      "/admin//etc/passwd",
    ]) {
      const res = await raw(gw.url, path);
      expect(res.status, path).toBe(400);
      expect(res.body, path).not.toContain('"name": "agentgateway"');
    }
  });

  it("only answers GET and HEAD", async () => {
    const post = await fetch(`${gw.url}/admin/`, { method: "POST", body: "x" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    const head = await raw(gw.url, "/admin/", "HEAD");
    expect(head.status).toBe(200);
    expect(head.body).toBe("");
  });

  it("loads only regular files: a symlink in the dist directory is not followed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "agw-dist-"));
    let listener: Listener | undefined;
    try {
      mkdirSync(join(dir, "assets"));
      writeFileSync(join(dir, "index.html"), "<!doctype html><title>t</title>");
      writeFileSync(join(tmpdir(), "agw-secret.txt"), "top secret");
      symlinkSync(join(tmpdir(), "agw-secret.txt"), join(dir, "assets", "secret.txt"));
      const handler = adminConsole((_req, res) => {
        res.writeHead(418);
        res.end();
      }, { distDir: dir });
      listener = await listen({ host: "127.0.0.1", port: 0, handler });
      const res = await fetch(`${listener.url}/admin/assets/secret.txt`);
      expect(res.status).toBe(404);
      expect(await res.text()).not.toContain("top secret");
      // Everything outside /admin/ goes to the next handler untouched.
      expect((await fetch(`${listener.url}/agentgateway.admin.v1.AgentService/ListAgents`, { method: "POST" })).status).toBe(418);
    } finally {
      await listener?.close(100);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("CORS for the admin API", () => {
  const preflight = (url: string, origin: string) =>
    fetch(`${url}/agentgateway.admin.v1.ApiKeyService/WhoAmI`, {
      method: "OPTIONS",
      headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type, connect-protocol-version" },
    });

  it("is off by default: no CORS headers, so browsers on other origins are refused", async () => {
    const res = await preflight(gw.url, consoleOrigin);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    const call = await fetch(`${gw.url}/agentgateway.admin.v1.ApiKeyService/WhoAmI`, {
      method: "POST",
      headers: { origin: consoleOrigin, "content-type": "application/json", authorization: `Bearer ${gw.adminKey}` },
      body: "{}",
    });
    expect(call.status).toBe(200);
    expect(call.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("answers a preflight from a configured origin with exactly that origin, and refuses others", async () => {
    const ok = await preflight(withCors.url, consoleOrigin);
    expect(ok.status).toBe(204);
    expect(ok.headers.get("access-control-allow-origin")).toBe(consoleOrigin);
    expect(ok.headers.get("access-control-allow-headers")).toContain("authorization");
    expect(ok.headers.get("access-control-allow-methods")).toContain("POST");
    expect(ok.headers.get("vary")).toContain("origin");
    const evil = await preflight(withCors.url, "https://evil.example.com");
    expect(evil.status).toBe(403);
    expect(evil.headers.get("access-control-allow-origin")).toBeNull();
    // Not the agent API: agents never run in a browser.
    const agentApi = await fetch(`${withCors.url}/agentgateway.v1.AgentGatewayService/UploadHeartbeat`, { method: "OPTIONS", headers: { origin: consoleOrigin } });
    expect(agentApi.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("marks responses to a configured origin readable, and a call from it still needs the key", async () => {
    const call = await fetch(`${withCors.url}/agentgateway.admin.v1.ApiKeyService/WhoAmI`, {
      method: "POST",
      headers: { origin: consoleOrigin, "content-type": "application/json", authorization: `Bearer ${gw.adminKey}` },
      body: "{}",
    });
    expect(call.status).toBe(200);
    expect(call.headers.get("access-control-allow-origin")).toBe(consoleOrigin);
    expect(call.headers.get("access-control-expose-headers")?.toLowerCase()).toContain("grpc-status");
    const noKey = await fetch(`${withCors.url}/agentgateway.admin.v1.ApiKeyService/WhoAmI`, {
      method: "POST",
      headers: { origin: consoleOrigin, "content-type": "application/json" },
      body: "{}",
    });
    expect(noKey.status).toBe(401);
  });
});
