import { writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import * as http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentGatewayService } from "../gen/agentgateway/v1/gateway_pb.js";
import { createTestCertificates } from "../test/support/certificates.js";
import { createClient } from "@connectrpc/connect";
import { checkServerUrl, createGatewayTransport, isLoopbackHost, normalizePin, TrustError } from "./transport.js";

let server: http2.Http2SecureServer;
let url: string;
let dir: string;
let caFile: string;
let pin: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "agw-tls-test-"));
  const { ca, server: certificate } = createTestCertificates();
  caFile = join(dir, "ca.pem");
  writeFileSync(caFile, ca.cert);
  pin = certificate.sha256;
  const { cert, key } = certificate;
  const handler = connectNodeAdapter({ routes: (router) => router.service(AgentGatewayService, { uploadHeartbeat: async () => ({}) }) });
  server = http2.createSecureServer({ cert, key }, handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  url = `https://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
});

afterAll(async () => {
  server?.close();
  await rm(dir, { recursive: true, force: true });
});

async function call(trust: Parameters<typeof createGatewayTransport>[1]): Promise<Code | "ok"> {
  const t = createGatewayTransport(url, trust, { unaryTimeoutMs: 5000 });
  try {
    await createClient(AgentGatewayService, t.transport).uploadHeartbeat({});
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  } finally {
    t.close();
  }
}

describe("gateway trust", () => {
  it("trusts the gateway through a CA file", async () => {
    expect(await call({ caFile, pins: [] })).toBe("ok");
  });

  it("trusts a gateway no trusted CA vouches for through its SHA-256 pin (colons and case do not matter)", async () => {
    const colons = pin.toUpperCase().match(/../g)?.join(":") ?? "";
    expect(await call({ pins: [colons] })).toBe("ok");
  });

  it("refuses a certificate that matches no pin, even when the CA vouches for it", async () => {
    const wrong = "00".repeat(32);
    expect(await call({ pins: [wrong] })).not.toBe("ok");
    expect(await call({ caFile, pins: [wrong] })).not.toBe("ok");
  });

  it("refuses an https gateway it has no way to trust (no trust on first use)", async () => {
    expect(() => createGatewayTransport(url, { pins: [] })).toThrow(TrustError);
    // With the system store only, a certificate from a private CA does not verify.
    expect(await call({ pins: [], systemCa: true })).not.toBe("ok");
  });

  it("allows h2c only to loopback unless told otherwise", () => {
    expect(() => checkServerUrl("http://127.0.0.1:7070", { pins: [] })).not.toThrow();
    expect(() => checkServerUrl("http://[::1]:7070", { pins: [] })).not.toThrow();
    expect(() => checkServerUrl("http://gw.example.com:7070", { pins: [] })).toThrow(/cleartext/);
    expect(() => checkServerUrl("http://gw.example.com:7070", { pins: [], allowInsecureHttp: true })).not.toThrow();
    expect(() => checkServerUrl("https://gw.example.com/api", { pins: [pin] })).toThrow(/without a path/);
    expect(isLoopbackHost("localhost")).toBe(true);
    expect(isLoopbackHost("127.8.9.10")).toBe(true);
    expect(isLoopbackHost("10.0.0.1")).toBe(false);
    expect(() => normalizePin("abc")).toThrow(TrustError);
  });
});
