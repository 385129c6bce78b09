import { secretFingerprint } from "../client/protocol/secrets.js";
import { Code } from "@connectrpc/connect";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { EnrollmentTokenService, EnrollmentTokenState } from "../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { AgentState } from "../gen/agentgateway/v1/common_pb.js";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { gatewayClient, type GatewayClient, handshake, register } from "../agent/lib/direct.js";
import { generateKeyPair, sign } from "../client/protocol/ed25519.js";
import { registerTranscript } from "../client/protocol/transcript.js";
import { verificationCode } from "../client/protocol/verification-code.js";
import { mintToken, newIdentity } from "./support/agents.js";
import { expectCode } from "./support/expect-code.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";

let gw: TestGateway;
let client: GatewayClient;
let sql: pg.Client;

beforeAll(async () => {
  gw = await startTestGateway({ registerRatePerSource: "1000/s:1000" });
  client = gatewayClient(gw.transport);
  sql = new pg.Client({ connectionString: gw.database.url });
  await sql.connect();
});

afterAll(async () => {
  await sql?.end();
  await gw?.stop();
});

describe("Register", () => {
  it("binds the key to a new ACTIVE agent in the token's tenant and returns the key's verification code", async () => {
    const identity = newIdentity();
    const token = await mintToken(gw, { labels: { site: "lab" } });
    const reg = await register(client, { token, identity, name: "probe-1", host: { hostname: "h1", os: "linux", labels: { site: "ignored", rack: "7" } } });
    expect(reg.state).toBe(AgentState.ACTIVE);
    expect(reg.verificationCode).toBe(verificationCode(identity.publicKey));
    const { agent } = await gw.admin(AgentService).getAgent({ id: reg.agentId });
    expect(agent?.name).toBe("probe-1");
    // The token's labels are the operator's; what the agent claims stays in host.labels.
    expect(agent?.labels).toEqual({ site: "lab" });
    expect(agent?.host?.labels).toEqual({ site: "ignored", rack: "7" });
    expect(agent?.tenantId).toBe(reg.tenantId);
  });

  it("refuses a used single-use token, and the listing shows it used without the secret", async () => {
    const token = await mintToken(gw);
    await register(client, { token, identity: newIdentity(), name: "first" });
    await expectCode(register(client, { token, identity: newIdentity(), name: "second" }), Code.Unauthenticated, /no uses left/);
    const { tokens } = await gw.admin(EnrollmentTokenService).listEnrollmentTokens({ includeInactive: true });
    const listed = tokens.find((t) => t.displayPrefix === secretFingerprint("enrollment", token));
    expect(listed?.state).toBe(EnrollmentTokenState.USED);
    expect(listed?.usesLeft).toBe(0);
    expect(JSON.stringify(tokens, (_k, v) => (typeof v === "bigint" ? String(v) : v))).not.toContain(token);
  });

  it("lets exactly one of many agents racing for a single-use token win", async () => {
    const token = await mintToken(gw);
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => register(client, { token, identity: newIdentity(), name: `racer-${i}` })),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const { rows } = await sql.query("select count(*)::int as n from agents where name like 'racer-%'");
    expect(rows[0].n).toBe(1);
  });

  it("refuses an expired token", async () => {
    const token = await mintToken(gw);
    await sql.query("update enrollment_tokens set expires_at = now() - interval '1 second' where display_prefix = $1", [secretFingerprint("enrollment", token)]);
    await expectCode(register(client, { token, identity: newIdentity(), name: "late" }), Code.Unauthenticated, /expired/);
  });

  it("refuses a revoked token", async () => {
    const token = await mintToken(gw);
    const { tokens } = await gw.admin(EnrollmentTokenService).listEnrollmentTokens({});
    const id = tokens.find((t) => t.displayPrefix === secretFingerprint("enrollment", token))?.id ?? "";
    const revoked = await gw.admin(EnrollmentTokenService).revokeEnrollmentToken({ id });
    expect(revoked.token?.state).toBe(EnrollmentTokenState.REVOKED);
    await expectCode(register(client, { token, identity: newIdentity(), name: "x" }), Code.Unauthenticated, /revoked/);
  });

  it("refuses unknown and malformed tokens", async () => {
    await expectCode(register(client, { token: `agwe_${"A".repeat(43)}`, identity: newIdentity(), name: "x" }), Code.Unauthenticated, /not valid/);
    await expectCode(register(client, { token: "hello", identity: newIdentity(), name: "x" }), Code.Unauthenticated, /not valid/);
  });

  it("refuses a proof signed by another key, or over another name, without using the token", async () => {
    const token = await mintToken(gw);
    const identity = newIdentity();
    const other = generateKeyPair();
    const forged = sign(other.privateKey, registerTranscript({ token, publicKey: identity.publicKey, name: "victim" }));
    await expectCode(
      client.register({ enrollmentToken: token, identityPublicKey: identity.publicKey, name: "victim", proofSignature: forged }),
      Code.Unauthenticated,
      /proof of possession/,
    );
    const otherName = sign(identity.privateKey, registerTranscript({ token, publicKey: identity.publicKey, name: "a" }));
    await expectCode(
      client.register({ enrollmentToken: token, identityPublicKey: identity.publicKey, name: "b", proofSignature: otherName }),
      Code.Unauthenticated,
      /proof of possession/,
    );
    await register(client, { token, identity, name: "victim" }); // the token is still unused
  });

  it("refuses a key already bound to a live agent", async () => {
    const identity = newIdentity();
    await register(client, { token: await mintToken(gw), identity, name: "one" });
    await expectCode(register(client, { token: await mintToken(gw), identity, name: "two" }), Code.AlreadyExists, /already bound/);
  });

  it("answers a retried Register (lost response) with the agent it created, without using the token again", async () => {
    const identity = newIdentity();
    const token = await mintToken(gw, { maxUses: 2 });
    const first = await register(client, { token, identity, name: "retry-me" });
    const again = await register(client, { token, identity, name: "retry-me" });
    expect(again.agentId).toBe(first.agentId);
    const { tokens } = await gw.admin(EnrollmentTokenService).listEnrollmentTokens({});
    expect(tokens.find((t) => t.displayPrefix === secretFingerprint("enrollment", token))?.usesLeft).toBe(1);
  });

  it("enforces a pinned name, and a refused attempt leaves the token usable", async () => {
    const token = await mintToken(gw, { pinnedAgentName: "db-7" });
    await expectCode(register(client, { token, identity: newIdentity(), name: "db-8" }), Code.PermissionDenied, /pinned/);
    const reg = await register(client, { token, identity: newIdentity(), name: "db-7" });
    expect(reg.state).toBe(AgentState.ACTIVE);
  });

  it("answers InvalidArgument naming the field for a 31-byte key", async () => {
    const err = await expectCode(
      client.register({ enrollmentToken: "agwe_x", identityPublicKey: new Uint8Array(31), name: "x", proofSignature: new Uint8Array(64) }),
      Code.InvalidArgument,
    );
    expect(err.rawMessage).toContain("identity_public_key");
  });

  it("does the same over native gRPC", async () => {
    const grpc = gatewayClient(gw.grpcTransport);
    const identity = newIdentity();
    const reg = await register(grpc, { token: await mintToken(gw), identity, name: "grpc-agent" });
    const session = await handshake(grpc, reg.agentId, identity);
    expect(session.token).toMatch(/^agws_/);
  });
});

describe("approval", () => {
  it("keeps a pending agent out of the handshake until an operator approves it after comparing codes", async () => {
    const identity = newIdentity();
    const reg = await register(client, { token: await mintToken(gw, { requiresApproval: true }), identity, name: "pending-1" });
    expect(reg.state).toBe(AgentState.PENDING_APPROVAL);
    const pending = await expectCode(handshake(client, reg.agentId, identity), Code.FailedPrecondition, /awaiting approval/);
    // Machine-readable for clients in any language: google.rpc.ErrorInfo.
    expect(pending.findDetails(ErrorInfoSchema)[0]?.reason).toBe("AWAITING_APPROVAL");
    const { agents } = await gw.admin(AgentService).listAgents({ states: [AgentState.PENDING_APPROVAL] });
    const listed = agents.find((a) => a.id === reg.agentId);
    expect(listed?.verificationCode).toBe(reg.verificationCode);
    await expectCode(
      gw.admin(AgentService).approveAgent({ id: reg.agentId, expectedVerificationCode: "AAAA-AAAA" }),
      Code.FailedPrecondition,
      /does not match/,
    );
    const approved = await gw.admin(AgentService).approveAgent({ id: reg.agentId, expectedVerificationCode: reg.verificationCode.toLowerCase() });
    expect(approved.agent?.state).toBe(AgentState.ACTIVE);
    const session = await handshake(client, reg.agentId, identity);
    expect(session.expiresAt.getTime()).toBeGreaterThan(Date.now());
  });

  it("refuses the handshake of a rejected agent, and lets its key enroll again with a new token", async () => {
    const identity = newIdentity();
    const reg = await register(client, { token: await mintToken(gw, { requiresApproval: true }), identity, name: "rejected-1" });
    await gw.admin(AgentService).rejectAgent({ id: reg.agentId, reason: "unknown host" });
    const rejected = await expectCode(handshake(client, reg.agentId, identity), Code.FailedPrecondition, /rejected/);
    expect(rejected.findDetails(ErrorInfoSchema)[0]?.reason).toBe("AGENT_REJECTED");
    const again = await register(client, { token: await mintToken(gw), identity, name: "rejected-1" });
    expect(again.agentId).not.toBe(reg.agentId);
  });
});
