import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes, X509Certificate } from "node:crypto";
import { promises as fs } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Code } from "@connectrpc/connect";
import forge from "node-forge";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { EnrollmentTokenService } from "../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { handshake, type Identity, register, type Session, withSession } from "../agent/lib/direct.js";
import { EXIT } from "../agent/lib/errors.js";
import { buildCsr, createCertificateRequest } from "../client/protocol/csr.js";
import { Reason, reasonOf } from "../client/reasons.js";
import { issueClientCertificate, newKeyPair } from "../server/ca/authority.js";
import { CaService } from "../server/ca/ca-service.js";
import { KeySealer } from "../server/ca/key-seal.js";
import { openDatabase } from "../server/db/database.js";
import { newIdentity } from "./support/agents.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { expectCode } from "./support/expect-code.js";
import { type GatewayProcess, spawnGateway } from "./support/gateway-process.js";
import { caPinOf, issueCertificate, pinnedAdmin, pinnedAgentClient, probeTls } from "./support/mtls.js";

/**
 * mTLS mode end to end (issue 14): two gateway processes on one PostgreSQL, TLS served with a
 * certificate from the internal CA, AGW_AGENT_AUTH=mtls. The real agent enrolls, gets and
 * renews its certificate inside `run`; after a revocation through replica A, replica B refuses
 * the agent's certificate at the TLS layer. Beside it, the attacks on issuance and on the
 * certificate check, and the rotation of the intermediate.
 */

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const adminKey = `mtls-test-${randomBytes(20).toString("hex")}`;
const caKey = randomBytes(32).toString("base64");
const TRUST_DOMAIN = "mtls.test";

let database: TestDatabase;
let a: GatewayProcess;
let b: GatewayProcess;
let pin: string;
let stateRoot: string;
const children: ChildProcess[] = [];

const env = () => ({
  DATABASE_URL: database.url,
  AGW_BOOTSTRAP_ADMIN_KEY: adminKey,
  AGW_AGENT_AUTH: "mtls",
  AGW_CA_KEY: caKey,
  AGW_TLS_FROM_CA: "127.0.0.1,localhost",
  AGW_TRUST_DOMAIN: TRUST_DOMAIN,
  AGW_AGENT_CERT_TTL: "20s",
  AGW_HANDSHAKE_RATE: "1000/s:1000",
});

const adminOn = (url: string) => ({
  tokens: pinnedAdmin(EnrollmentTokenService, url, pin, adminKey),
  agents: pinnedAdmin(AgentService, url, pin, adminKey),
});

/** Registers a new agent through replica `url` and handshakes (no certificate needed for either). */
async function enroll(url: string): Promise<{ agentId: string; tenantId: string; identity: Identity; session: Session }> {
  const { secret } = await adminOn(url).tokens.createEnrollmentToken({});
  const identity = newIdentity();
  const { client, close } = pinnedAgentClient(url, pin);
  try {
    const reg = await register(client, { token: secret, identity, name: `m-${Math.random().toString(36).slice(2, 7)}` });
    const session = await handshake(client, reg.agentId, identity);
    return { agentId: reg.agentId, tenantId: reg.tenantId, identity, session };
  } finally {
    close();
  }
}

interface Proc {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  waitFor(pattern: RegExp, count?: number, timeoutMs?: number): Promise<void>;
}

function agent(args: string[]): Proc {
  const child = spawn(process.execPath, [join(ROOT, "bin", "agw-agent.js"), ...args], { cwd: ROOT, env: { ...process.env, AGW_ENROLLMENT_TOKEN: "" }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    output: () => output,
    exited,
    async waitFor(pattern, count = 1, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      const global = new RegExp(pattern.source, "g");
      for (;;) {
        if ((output.match(global) ?? []).length >= count) return;
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`no ${count}× ${pattern} in the agent's output:\n${output}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The CA as the gateways see it, opened here with the same key (to mint an expired certificate). */
async function openTestCa(): Promise<{ ca: CaService; close(): Promise<void> }> {
  const logger = pino({ level: "silent" });
  const db = await openDatabase({ databaseUrl: database.url, dataDir: "", poolSize: 2, logger });
  const ca = await CaService.open(db.db, {
    sealer: new KeySealer(caKey),
    trustDomain: TRUST_DOMAIN,
    agentCertTtlMs: 20_000,
    intermediateTtlMs: 365 * 86_400_000,
    rootTtlMs: 10 * 365 * 86_400_000,
    logger,
  });
  return { ca, close: () => db.close() };
}

beforeAll(async () => {
  database = await createTestDatabase();
  stateRoot = await mkdtemp(join(tmpdir(), "agw-mtls-"));
  // Started together: the advisory lock makes them create one CA between them.
  // Generous: on a loaded machine a gateway process takes a while to start.
  [a, b] = await Promise.all([spawnGateway(env(), 150_000), spawnGateway(env(), 150_000)]);
  pin = caPinOf(a.output());
  expect(caPinOf(b.output())).toBe(pin);
  expect(a.url).toMatch(/^https:/);
}, 180_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await Promise.all([a?.stop(), b?.stop()]);
  await database?.drop();
  await rm(stateRoot, { recursive: true, force: true });
});

describe("mTLS mode with two replicas", () => {
  it("an agent enrolls, gets a certificate inside run, renews it, and after revocation through A is refused at the TLS handshake by B", async () => {
    const dir = join(stateRoot, "agent");
    const { secret } = await adminOn(a.url).tokens.createEnrollmentToken({});
    const enrolled = agent(["enroll", "--server", a.url, "--ca-pin", pin, "--token", secret, "--name", "mtls-agent", "--state-dir", dir]);
    expect(await enrolled.exited, enrolled.output()).toBe(0);
    const agentId = JSON.parse(await fs.readFile(join(dir, "state.json"), "utf8")).agentId as string;

    const run = agent(["run", "--state-dir", dir, "--telemetry-interval", "0", "--backoff-initial", "200ms", "--backoff-max", "1s", "--log-level", "info"]);
    await run.waitFor(/client certificate issued/);
    await run.waitFor(/connected: control stream open/);
    const first = new X509Certificate(await fs.readFile(join(dir, "tls-cert.pem")));
    expect((await fs.stat(join(dir, "tls-key.pem"))).mode & 0o777).toBe(0o600);
    const spiffeId = `spiffe://${TRUST_DOMAIN}/tenant/${(await adminOn(a.url).agents.getAgent({ id: agentId })).agent?.tenantId}/agent/${agentId}`;
    expect(first.subjectAltName).toBe(`URI:${spiffeId}`);

    // Renewal at half of the 20 s lifetime: a new certificate (new key, new serial), the same identity,
    // and the stream reconnects with it.
    await run.waitFor(/client certificate issued/, 2, 90_000);
    await run.waitFor(/connected: control stream open/, 2, 60_000);
    const second = new X509Certificate(await fs.readFile(join(dir, "tls-cert.pem")));
    expect(second.serialNumber).not.toBe(first.serialNumber);
    expect(second.publicKey.export({ type: "spki", format: "der" }).equals(first.publicKey.export({ type: "spki", format: "der" }))).toBe(false);
    expect(second.subjectAltName).toBe(`URI:${spiffeId}`);

    // Replica B serves this certificate before the revocation…
    const certificate = { cert: await fs.readFile(join(dir, "tls-cert.pem"), "utf8"), key: await fs.readFile(join(dir, "tls-key.pem"), "utf8") };
    expect(await probeTls(b.url, certificate)).toBe("served");
    const notAfter = new Date(new X509Certificate(certificate.cert).validTo).getTime();
    await adminOn(a.url).agents.revokeAgent({ id: agentId, reason: "stolen host" });
    // …and refuses it at the TLS layer once the revocation reached it over the bus — while the
    // certificate is still valid, so the refusal is the deny list's, not the expiry's.
    await until("B to refuse the revoked agent's certificate", async () => ((await probeTls(b.url, certificate)) === "refused" ? true : undefined), notAfter - Date.now() - 1000);
    expect(Date.now()).toBeLessThan(notAfter);
    // Without a certificate B still serves (enrollment and handshakes need none).
    expect(await probeTls(b.url, undefined)).toBe("served");
    // The agent itself learns of it and stops for good.
    expect(await run.exited, run.output()).toBe(EXIT.REVOKED);
  }, 300_000);

  it("refuses agent RPCs without a certificate but issues the first certificate with the session alone", async () => {
    const me = await enroll(a.url);
    const bare = pinnedAgentClient(b.url, pin);
    const err = await expectCode(bare.client.uploadHeartbeat({}, withSession(me.session)), Code.Unauthenticated, /client certificate/);
    expect(reasonOf(err)).toBe(Reason.CLIENT_CERTIFICATE_REQUIRED);
    const certificate = await issueCertificate(bare.client, me.agentId, me.identity, me.session);
    bare.close();
    expect(certificate.spiffeId).toBe(`spiffe://${TRUST_DOMAIN}/tenant/${me.tenantId}/agent/${me.agentId}`);
    const withCert = pinnedAgentClient(b.url, pin, certificate);
    await withCert.client.uploadHeartbeat({}, withSession(me.session));
    withCert.close();
  });

  it("refuses a CSR for another key, a forged binding, a replayed binding and an oversized CSR", async () => {
    const victim = await enroll(a.url);
    const attacker = await enroll(a.url);
    const { client, close } = pinnedAgentClient(a.url, pin);
    try {
      // The victim's TLS public key (it is in the victim's certificate), in a CSR the attacker signs.
      const victimKey = newKeyPair().spkiDer;
      const attackerKey = newKeyPair();
      const foreignCsr = buildCsr(victimKey, attackerKey.privateKey);
      const request = createCertificateRequest(attacker.agentId, attacker.identity.privateKey);
      await expectCode(
        client.issueAgentCertificate({ csrDer: foreignCsr, bindingSignature: request.bindingSignature }, withSession(attacker.session)),
        Code.InvalidArgument,
        /does not verify with the key it carries/,
      );
      // A binding made by another identity key (the attacker's) over the victim's agent id.
      const forged = createCertificateRequest(victim.agentId, attacker.identity.privateKey);
      await expectCode(
        client.issueAgentCertificate({ csrDer: forged.csrDer, bindingSignature: forged.bindingSignature }, withSession(victim.session)),
        Code.InvalidArgument,
        /binding_signature does not verify/,
      );
      // The victim's genuine CSR and binding, replayed with the attacker's session.
      const genuine = createCertificateRequest(victim.agentId, victim.identity.privateKey);
      await expectCode(
        client.issueAgentCertificate({ csrDer: genuine.csrDer, bindingSignature: genuine.bindingSignature }, withSession(attacker.session)),
        Code.InvalidArgument,
        /binding_signature does not verify/,
      );
      await expectCode(
        client.issueAgentCertificate({ csrDer: new Uint8Array(5000), bindingSignature: request.bindingSignature }, withSession(attacker.session)),
        Code.InvalidArgument,
      );
      // The same genuine request with the victim's own session is issued (the refusals were about the attacks).
      await client.issueAgentCertificate({ csrDer: genuine.csrDer, bindingSignature: genuine.bindingSignature }, withSession(victim.session));
    } finally {
      close();
    }
  });

  it("refuses agent A's certificate with agent B's session", async () => {
    const first = await enroll(a.url);
    const second = await enroll(a.url);
    const bare = pinnedAgentClient(a.url, pin);
    const certificate = await issueCertificate(bare.client, first.agentId, first.identity, first.session);
    bare.close();
    const { client, close } = pinnedAgentClient(b.url, pin, certificate);
    try {
      await client.uploadHeartbeat({}, withSession(first.session));
      const err = await expectCode(client.uploadHeartbeat({}, withSession(second.session)), Code.PermissionDenied, /not the session's agent's/);
      expect(reasonOf(err)).toBe(Reason.CERTIFICATE_MISMATCH);
    } finally {
      close();
    }
  });

  it("refuses at the TLS layer a certificate from another CA naming a real agent, and an expired one from its own CA", async () => {
    const me = await enroll(a.url);
    const spiffeId = `spiffe://${TRUST_DOMAIN}/tenant/${me.tenantId}/agent/${me.agentId}`;

    // Another CA (forge, RSA), same SPIFFE id.
    const caKeys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
    const leafKeys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
    const ca = forge.pki.createCertificate();
    ca.publicKey = caKeys.publicKey;
    ca.serialNumber = "01";
    ca.validity.notBefore = new Date(Date.now() - 60_000);
    ca.validity.notAfter = new Date(Date.now() + 3_600_000);
    ca.setSubject([{ name: "commonName", value: "AgentGateway root CA" }]);
    ca.setIssuer([{ name: "commonName", value: "AgentGateway root CA" }]);
    ca.setExtensions([{ name: "basicConstraints", cA: true, critical: true }, { name: "keyUsage", keyCertSign: true, critical: true }]);
    ca.sign(caKeys.privateKey, forge.md.sha256.create());
    const leaf = forge.pki.createCertificate();
    leaf.publicKey = leafKeys.publicKey;
    leaf.serialNumber = "02";
    leaf.validity.notBefore = new Date(Date.now() - 60_000);
    leaf.validity.notAfter = new Date(Date.now() + 3_600_000);
    leaf.setSubject([]);
    leaf.setIssuer(ca.subject.attributes);
    leaf.setExtensions([{ name: "extKeyUsage", clientAuth: true }, { name: "subjectAltName", altNames: [{ type: 6, value: spiffeId }] }]);
    leaf.sign(caKeys.privateKey, forge.md.sha256.create());
    const foreign = { cert: forge.pki.certificateToPem(leaf) + forge.pki.certificateToPem(ca), key: forge.pki.privateKeyToPem(leafKeys.privateKey) };
    expect(await probeTls(a.url, foreign)).toBe("refused");

    // Our own CA's signature, but expired an hour ago.
    const { ca: ours, close } = await openTestCa();
    try {
      const intermediate = await ours.rotateIntermediate();
      const { privateKey, spkiDer } = newKeyPair();
      const expired = issueClientCertificate(intermediate, spkiDer, spiffeId, 60_000, new Date(Date.now() - 3_600_000));
      const pem = [expired.der, ...expired.chain].map((d) => new X509Certificate(d).toString()).join("");
      const certificate = { cert: pem, key: privateKey.export({ type: "pkcs8", format: "pem" }).toString() };
      expect(await probeTls(b.url, certificate)).toBe("refused");
      // The control: the same CA, the same agent, valid now → served.
      const valid = issueClientCertificate(intermediate, spkiDer, spiffeId, 60_000);
      const validPem = [valid.der, ...valid.chain].map((d) => new X509Certificate(d).toString()).join("");
      expect(await probeTls(b.url, { cert: validPem, key: certificate.key })).toBe("served");
    } finally {
      await close();
    }
  });

  it("rotates the intermediate: certificates of the old one stay valid, new ones come from the new one, the bundle holds both", { timeout: 120_000 }, async () => {
    const me = await enroll(a.url);
    const bare = pinnedAgentClient(a.url, pin);
    const before = await issueCertificate(bare.client, me.agentId, me.identity, me.session);
    const rotate = spawn(process.execPath, ["--import", "tsx", "server/main.ts", "ca", "rotate"], {
      cwd: ROOT,
      env: { ...process.env, ...env(), AGW_LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    rotate.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    rotate.stderr?.on("data", (d: Buffer) => (out += d.toString()));
    expect(await new Promise((resolve) => rotate.once("exit", resolve)), out).toBe(0);
    expect(out).toContain(pin);

    const after = await issueCertificate(bare.client, me.agentId, me.identity, me.session);
    bare.close();
    expect(Buffer.from(after.issuerDer).equals(Buffer.from(before.issuerDer))).toBe(false);
    const bundle = after.bundle.map((d) => Buffer.from(d));
    expect(bundle.some((d) => d.equals(Buffer.from(before.issuerDer)))).toBe(true);
    expect(bundle.some((d) => d.equals(Buffer.from(after.issuerDer)))).toBe(true);
    // Both replicas accept both certificates: the trust anchor is the root, unchanged.
    for (const url of [a.url, b.url]) {
      for (const certificate of [before, after]) {
        const { client, close } = pinnedAgentClient(url, pin, certificate);
        await client.uploadHeartbeat({}, withSession(me.session));
        close();
      }
    }
  });

  it("refuses to start in mtls mode with another CA key than the one that sealed the CA", async () => {
    await expect(spawnGateway({ ...env(), AGW_CA_KEY: randomBytes(32).toString("base64") }, 120_000)).rejects.toThrow(/cannot open the CA's private key/);
    await expect(spawnGateway({ ...env(), AGW_CA_KEY: "" }, 120_000)).rejects.toThrow(/AGW_AGENT_AUTH=mtls needs the CA key/);
  }, 250_000);
});

