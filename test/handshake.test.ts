import { Code } from "@connectrpc/connect";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { AgentStatus } from "../gen/agentgateway/v1/ingest_pb.js";
import { RetryInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { gatewayClient, type GatewayClient, handshake, register, withSession } from "../agent/lib/direct.js";
import { generateKeyPair, sign } from "../client/protocol/ed25519.js";
import { authTranscript } from "../client/protocol/transcript.js";
import { enrollAgent, mintToken, newIdentity } from "./support/agents.js";
import { expectCode } from "./support/expect-code.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";

let gw: TestGateway;
let client: GatewayClient;
let sql: pg.Client;

beforeAll(async () => {
  gw = await startTestGateway({ handshakeRatePerAgent: "1000/s:1000" });
  client = gatewayClient(gw.transport);
  sql = new pg.Client({ connectionString: gw.database.url });
  await sql.connect();
});

afterAll(async () => {
  await sql?.end();
  await gw?.stop();
});

const heartbeat = (session: { token: string }) => client.uploadHeartbeat({ status: AgentStatus.HEALTHY, agentVersion: "1.0.0" }, withSession(session));

describe("handshake", () => {
  it("issues a session that authenticates post-handshake RPCs", async () => {
    const agent = await enrollAgent(gw);
    const res = await heartbeat(agent.session);
    expect(res.nextHeartbeatInterval?.seconds).toBeGreaterThan(0n);
  });

  it("refuses a replayed challenge", async () => {
    const { identity, registration } = await enrollAgent(gw);
    const challenge = await client.beginAuthHandshake({ agentId: registration.agentId, identityPublicKey: identity.publicKey });
    const signature = sign(identity.privateKey, authTranscript({ challengeId: challenge.challengeId, nonce: challenge.nonce, agentId: registration.agentId, publicKey: identity.publicKey }));
    await client.completeAuthHandshake({ challengeId: challenge.challengeId, agentId: registration.agentId, signature });
    await expectCode(client.completeAuthHandshake({ challengeId: challenge.challengeId, agentId: registration.agentId, signature }), Code.Unauthenticated, /already used/);
  });

  it("refuses a signature by another key, and the failed attempt consumes the challenge", async () => {
    const { identity, registration } = await enrollAgent(gw);
    const challenge = await client.beginAuthHandshake({ agentId: registration.agentId, identityPublicKey: identity.publicKey });
    const thief = generateKeyPair();
    const transcript = authTranscript({ challengeId: challenge.challengeId, nonce: challenge.nonce, agentId: registration.agentId, publicKey: identity.publicKey });
    await expectCode(
      client.completeAuthHandshake({ challengeId: challenge.challengeId, agentId: registration.agentId, signature: sign(thief.privateKey, transcript) }),
      Code.Unauthenticated,
      /does not verify/,
    );
    await expectCode(
      client.completeAuthHandshake({ challengeId: challenge.challengeId, agentId: registration.agentId, signature: sign(identity.privateKey, transcript) }),
      Code.Unauthenticated,
      /already used/,
    );
  });

  it("refuses a challenge that was issued to another agent", async () => {
    const a = await enrollAgent(gw);
    const b = await enrollAgent(gw);
    const challenge = await client.beginAuthHandshake({ agentId: a.registration.agentId, identityPublicKey: a.identity.publicKey });
    const signature = sign(b.identity.privateKey, authTranscript({ challengeId: challenge.challengeId, nonce: challenge.nonce, agentId: b.registration.agentId, publicKey: b.identity.publicKey }));
    await expectCode(client.completeAuthHandshake({ challengeId: challenge.challengeId, agentId: b.registration.agentId, signature }), Code.Unauthenticated, /another agent/);
  });

  it("refuses an expired challenge", async () => {
    const { identity, registration } = await enrollAgent(gw);
    const challenge = await client.beginAuthHandshake({ agentId: registration.agentId, identityPublicKey: identity.publicKey });
    await sql.query("update auth_challenges set expires_at = now() - interval '1 second' where id = $1", [challenge.challengeId]);
    const signature = sign(identity.privateKey, authTranscript({ challengeId: challenge.challengeId, nonce: challenge.nonce, agentId: registration.agentId, publicKey: identity.publicKey }));
    await expectCode(client.completeAuthHandshake({ challengeId: challenge.challengeId, agentId: registration.agentId, signature }), Code.Unauthenticated, /expired/);
  });

  it("answers NotFound for an unknown agent or a key that is not the agent's", async () => {
    const { registration } = await enrollAgent(gw);
    await expectCode(client.beginAuthHandshake({ agentId: registration.agentId, identityPublicKey: newIdentity().publicKey }), Code.NotFound);
    await expectCode(client.beginAuthHandshake({ agentId: crypto.randomUUID(), identityPublicKey: newIdentity().publicKey }), Code.NotFound);
  });
});

describe("sessions", () => {
  it("refuses calls without a session, with a garbage one, and with an expired one", async () => {
    await expectCode(client.uploadHeartbeat({}), Code.Unauthenticated, /missing or malformed/);
    await expectCode(heartbeat({ token: `agws_${"B".repeat(43)}` }), Code.Unauthenticated);
    const { registration, session } = await enrollAgent(gw);
    await sql.query("update sessions set expires_at = now() - interval '1 second' where agent_id = $1", [registration.agentId]);
    await expectCode(heartbeat(session), Code.Unauthenticated, /expired/);
  });

  it("fences out the previous session when the agent handshakes again, even if it was cached", async () => {
    const agent = await enrollAgent(gw);
    await heartbeat(agent.session); // now cached
    const fresh = await handshake(client, agent.registration.agentId, agent.identity);
    await expectCode(heartbeat(agent.session), Code.Unauthenticated, /replaced/);
    await heartbeat(fresh);
  });

  it("takes identity only from the session: a session cannot act for another agent", async () => {
    const a = await enrollAgent(gw);
    const b = await enrollAgent(gw);
    await heartbeat(a.session);
    await client.uploadHeartbeat({ agentVersion: "9.9.9" }, withSession(b.session));
    await gw.gateway.context.heartbeats.flush();
    const { agent } = await gw.admin(AgentService).getAgent({ id: b.registration.agentId });
    expect(agent?.agentVersion).toBe("9.9.9");
    const other = await gw.admin(AgentService).getAgent({ id: a.registration.agentId });
    expect(other.agent?.agentVersion).not.toBe("9.9.9");
  });
});

describe("revocation", () => {
  it("denies a revoked identity everywhere, survives retirement, and only un-revoke restores it", async () => {
    const agent = await enrollAgent(gw);
    await heartbeat(agent.session); // cached session must be dropped at once
    await gw.admin(AgentService).revokeAgent({ id: agent.registration.agentId, reason: "host compromised" });
    await expectCode(heartbeat(agent.session), Code.PermissionDenied, /revoked/);
    await expectCode(handshake(client, agent.registration.agentId, agent.identity), Code.PermissionDenied, /revoked/);
    await expectCode(register(client, { token: await mintToken(gw), identity: agent.identity, name: "again" }), Code.PermissionDenied, /revoked/);
    await gw.admin(AgentService).unrevokeAgent({ id: agent.registration.agentId, note: "reimaged" });
    await expectCode(heartbeat(agent.session), Code.Unauthenticated);
    const session = await handshake(client, agent.registration.agentId, agent.identity);
    await heartbeat(session);
  });

  it("keeps refusing a revoked key after the agent is retired", async () => {
    const agent = await enrollAgent(gw);
    await gw.admin(AgentService).revokeAgent({ id: agent.registration.agentId, reason: "stolen" });
    await gw.admin(AgentService).retireAgent({ id: agent.registration.agentId, reason: "cleanup" });
    await expectCode(register(client, { token: await mintToken(gw), identity: agent.identity, name: "laundered" }), Code.PermissionDenied, /revoked/);
  });

  it("requires a reason for revocation and a note for un-revocation", async () => {
    const agent = await enrollAgent(gw);
    await expectCode(gw.admin(AgentService).revokeAgent({ id: agent.registration.agentId, reason: "" }), Code.InvalidArgument, /reason/);
    await gw.admin(AgentService).revokeAgent({ id: agent.registration.agentId, reason: "r" });
    await expectCode(gw.admin(AgentService).unrevokeAgent({ id: agent.registration.agentId, note: "" }), Code.InvalidArgument, /note/);
  });
});

describe("rate limits", () => {
  it("sheds handshake bursts for one agent with RESOURCE_EXHAUSTED and a retry hint", async () => {
    const limited = await startTestGateway({ handshakeRatePerAgent: "0.01/s:1" }, undefined);
    try {
      const c = gatewayClient(limited.transport);
      const agent = await enrollAgent(limited);
      // enrollAgent's Begin (with the right key) spent the burst of 1.
      const err = await expectCode(c.beginAuthHandshake({ agentId: agent.registration.agentId, identityPublicKey: agent.identity.publicKey }), Code.ResourceExhausted, /retry after \d+ s/);
      expect(err.metadata.get("retry-after")).toMatch(/^\d+$/);
      expect(err.findDetails(RetryInfoSchema)[0]?.retryDelay?.seconds).toBeGreaterThanOrEqual(0n);
      // Another agent is not affected.
      const other = await enrollAgent(limited);
      expect(other.session.token).toMatch(/^agws_/);
    } finally {
      await limited.stop();
    }
  });

  it("does not let a stranger who knows an agent id spend that agent's handshake budget", async () => {
    const limited = await startTestGateway({ handshakeRatePerAgent: "0.01/s:2" }, undefined);
    try {
      const c = gatewayClient(limited.transport);
      const token = await mintToken(limited);
      const identity = newIdentity();
      const reg = await register(c, { token, identity, name: "victim" });
      const stranger = generateKeyPair();
      for (let i = 0; i < 10; i++) {
        await expectCode(c.beginAuthHandshake({ agentId: reg.agentId, identityPublicKey: stranger.publicKey }), Code.NotFound);
      }
      const session = await handshake(c, reg.agentId, identity);
      expect(session.token).toMatch(/^agws_/);
    } finally {
      await limited.stop();
    }
  });
});
