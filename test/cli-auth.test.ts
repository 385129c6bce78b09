import { randomUUID } from "node:crypto";
import * as http2 from "node:http2";
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyService, Role } from "../gen/agentgateway/admin/v1/api_keys_pb.js";
import { EXIT } from "../cli/errors.js";
import { cliEnv, runCliProcess, startCliOnTty } from "./support/agwctl.js";
import { createTestCertificates } from "./support/certificates.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";

/**
 * The attacks on agwctl's credentials and trust, against real gateways (one cleartext on
 * loopback, one with TLS from a test CA) on real PostgreSQL: wrong and under-privileged
 * keys get their own exit codes, the key never appears in output, the config file stays 0600 and
 * is refused when others can read it, the saved key is never sent to another server, and a
 * gateway whose certificate does not match the pin is not talked to.
 */

let gw: TestGateway;
let tlsGw: TestGateway;
let dir: string;
let pin: string;
let caFile: string;
let viewerKey: string;

const configHome = (name: string) => join(dir, name);
const run = (args: string[], home: string, extra: Record<string, string> = {}, input = "") => runCliProcess(args, cliEnv(configHome(home), extra), input);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "agwctl-auth-"));
  const pki = createTestCertificates();
  await writeFile(join(dir, "gw.pem"), pki.server.cert);
  await writeFile(join(dir, "gw.key"), pki.server.key, { mode: 0o600 });
  caFile = join(dir, "ca.pem");
  await writeFile(caFile, pki.ca.cert);
  pin = pki.server.sha256;
  gw = await startTestGateway();
  tlsGw = await startTestGateway({ tlsCert: join(dir, "gw.pem"), tlsKey: join(dir, "gw.key") }, gw.database);
  viewerKey = (await gw.admin(ApiKeyService).createApiKey({ name: "viewer", role: Role.VIEWER })).secret;
}, 90_000);

afterAll(async () => {
  await tlsGw?.stop();
  await gw?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("credentials", () => {
  it("answers a wrong key with the unauthenticated exit code and says what to do", async () => {
    const res = await run(["agents", "list", "--server", gw.url], "none", { AGW_API_KEY: `agwk_${"A".repeat(43)}` });
    expect(res.code).toBe(EXIT.UNAUTHENTICATED);
    expect(res.stderr).toMatch(/does not accept the API key .*agwctl login/);
    const asJson = await run(["agents", "list", "--server", gw.url, "-o", "json"], "none", { AGW_API_KEY: "wrong" });
    expect(JSON.parse(asJson.stderr)).toMatchObject({ error: { code: "UNAUTHENTICATED", exitCode: EXIT.UNAUTHENTICATED } });
    const none = await run(["agents", "list", "--server", gw.url], "none");
    expect(none.code).toBe(EXIT.UNAUTHENTICATED);
    expect(none.stderr).toMatch(/no API key for .*agwctl login/);
  });

  it("lets a viewer read but answers a change with the permission-denied exit code", async () => {
    const read = await run(["agents", "list", "--server", gw.url, "-o", "json"], "none", { AGW_API_KEY: viewerKey });
    expect(read.code, read.stderr).toBe(EXIT.OK);
    const write = await run(["tokens", "create", "--server", gw.url], "none", { AGW_API_KEY: viewerKey });
    expect(write.code).toBe(EXIT.PERMISSION_DENIED);
    expect(write.stderr).toMatch(/needs role editor.*agwctl keys create/);
    expect(write.stdout + write.stderr).not.toContain(viewerKey);
  });

  it("keeps distinct exit codes for not found, bad usage and an unreachable gateway", async () => {
    const missing = await run(["agents", "get", randomUUID(), "--server", gw.url], "none", { AGW_API_KEY: gw.adminKey });
    expect(missing.code).toBe(EXIT.NOT_FOUND);
    expect(missing.stderr).toMatch(/agwctl agents list/);
    const badId = await run(["agents", "get", "web-1", "--server", gw.url], "none", { AGW_API_KEY: gw.adminKey });
    expect(badId.code).toBe(EXIT.USAGE);
    const badFlag = await run(["agents", "list", "--no-such-flag"], "none");
    expect(badFlag.code).toBe(EXIT.USAGE);
    const invalid = await run(["tokens", "create", "--ttl", "10s", "--server", gw.url], "none", { AGW_API_KEY: gw.adminKey });
    expect(invalid.code).toBe(EXIT.USAGE);
    expect(invalid.stderr).toMatch(/rejected the request: .*ttl/);
    const down = await run(["agents", "list", "--server", "http://127.0.0.1:9", "--timeout", "5s"], "none", { AGW_API_KEY: gw.adminKey });
    expect(down.code).toBe(EXIT.UNAVAILABLE);
    expect(down.stderr).toMatch(/cannot reach http:\/\/127\.0\.0\.1:9/);
    for (const res of [missing, badId, invalid, down]) expect(res.stdout + res.stderr).not.toContain(gw.adminKey);
  });
});

describe("the config file", () => {
  it("is written 0600 by login and refused once others can read it", async () => {
    const login = await run(["login", "--server", gw.url], "perm", {}, gw.adminKey);
    expect(login.code, login.stderr).toBe(0);
    const file = join(configHome("perm"), "agwctl", "config.json");
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await run(["whoami"], "perm")).code).toBe(0);
    await chmod(file, 0o644);
    const refused = await run(["whoami"], "perm");
    expect(refused.code).toBe(EXIT.USAGE);
    expect(refused.stderr).toMatch(/readable by other users \(mode 644\).*chmod 600/);
    expect(refused.stderr).not.toContain(gw.adminKey);
  });

  it("never sends the saved key to another server, and flags beat the environment, which beats the file", async () => {
    const login = await run(["login", "--server", gw.url], "other", {}, gw.adminKey);
    expect(login.code).toBe(0);
    // A server that records every Authorization header it is sent.
    const seen: string[] = [];
    const trap = http2.createServer((req, res) => {
      seen.push(String(req.headers.authorization ?? ""));
      res.writeHead(401).end();
    });
    await new Promise<void>((resolve) => trap.listen(0, "127.0.0.1", resolve));
    const address = trap.address();
    const trapUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
    try {
      const viaFlag = await run(["agents", "list", "--server", trapUrl], "other");
      const viaEnv = await run(["agents", "list"], "other", { AGW_SERVER: trapUrl });
      for (const res of [viaFlag, viaEnv]) {
        expect(res.code).toBe(EXIT.UNAUTHENTICATED);
        expect(res.stderr).toMatch(/the saved key is for .* and is never sent elsewhere/);
      }
      expect(seen).toEqual([]);
      // The flag wins over AGW_SERVER: the real gateway answers although the env points at the trap.
      const flagWins = await run(["whoami", "--server", gw.url, "-o", "json"], "other", { AGW_SERVER: trapUrl });
      expect(flagWins.code, flagWins.stderr).toBe(0);
      // AGW_API_KEY wins over the file's key: the viewer key is the one in use.
      const envWins = await run(["whoami", "-o", "json"], "other", { AGW_API_KEY: viewerKey });
      expect((JSON.parse(envWins.stdout) as { key: { role: string } }).key.role).toBe("ROLE_VIEWER");
      expect(seen).toEqual([]);
    } finally {
      trap.close();
    }
  });

  it("reads the key at a prompt that does not echo it", async () => {
    const home = configHome("tty");
    const login = startCliOnTty(["login", "--server", gw.url], cliEnv(home));
    try {
      await login.waitFor(/API key for http:\/\/127\.0\.0\.1:\d+: /);
      login.child.stdin?.write(`${gw.adminKey}\r`);
      expect(await login.exited, login.output()).toBe(0);
      expect(login.output()).toMatch(/Logged in/);
      expect(login.output()).not.toContain(gw.adminKey);
      expect(login.output()).not.toContain(gw.adminKey.slice(0, 16));
      expect(JSON.parse(await readFile(join(home, "agwctl", "config.json"), "utf8")).apiKey).toBe(gw.adminKey);
    } finally {
      login.child.kill("SIGKILL");
    }
  });
});

describe("TLS trust", () => {
  it("talks to a TLS gateway through its pin or its CA and saves the pin with the login", async () => {
    const login = await run(["login", "--server", tlsGw.url, "--ca-pin", pin.match(/../g)?.join(":") ?? ""], "tls", {}, gw.adminKey);
    expect(login.code, login.stderr).toBe(0);
    const saved = JSON.parse(await readFile(join(configHome("tls"), "agwctl", "config.json"), "utf8")) as { caPins: string[] };
    expect(saved.caPins).toHaveLength(1);
    const me = await run(["whoami", "-o", "json"], "tls");
    expect(me.code, me.stderr).toBe(0);
    const viaCa = await run(["whoami", "--server", tlsGw.url, "--ca-file", caFile], "none", { AGW_API_KEY: gw.adminKey });
    expect(viaCa.code, viaCa.stderr).toBe(0);
  });

  it("refuses a gateway whose certificate matches no pin, and one with no trust configured", async () => {
    const wrong = await run(["whoami", "--server", tlsGw.url, "--ca-pin", "ab".repeat(32)], "none", { AGW_API_KEY: gw.adminKey });
    expect(wrong.code).toBe(EXIT.UNTRUSTED);
    expect(wrong.stderr).toMatch(/is not trusted .*matches no pinned fingerprint.*--ca-pin/);
    const untrusted = await run(["whoami", "--server", tlsGw.url], "none", { AGW_API_KEY: gw.adminKey });
    expect(untrusted.code).toBe(EXIT.USAGE);
    expect(untrusted.stderr).toMatch(/needs --ca-file FILE or --ca-pin SHA256/);
    const privateCaWithSystemStore = await run(["whoami", "--server", tlsGw.url, "--system-ca"], "none", { AGW_API_KEY: gw.adminKey });
    expect(privateCaWithSystemStore.code).toBe(EXIT.UNTRUSTED);
    for (const res of [wrong, untrusted, privateCaWithSystemStore]) expect(res.stdout + res.stderr).not.toContain(gw.adminKey);
  });
});
