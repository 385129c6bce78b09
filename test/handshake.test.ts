import { Code } from "@connectrpc/connect";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { AgentStatus } from "../gen/agentgateway/v1/ingest_pb.js";
import { GoAwayReason } from "../gen/agentgateway/v1/control_pb.js";
import { RetryInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { gatewayClient, type GatewayClient, handshake, type Identity, register, withSession } from "../agent/lib/direct.js";
import { TenantService } from "../gen/agentgateway/provider/v1/tenants_pb.js";
import { Reason, reasonOf } from "../client/reasons.js";
import { challengeNonce, keyThatTagged, type MacKey, mintChallengeId, parseChallengeId } from "../server/auth/challenge-mac.js";
import { addHandshakeKey } from "../server/auth/handshake-key-store.js";
import { HandshakeKeys } from "../server/auth/handshake-keys.js";
import { createTenantViaProvider, enrollInto } from "./support/tenants.js";
import { generateKeyPair, sign } from "../client/protocol/ed25519.js";
import { authTranscript } from "../client/protocol/transcript.js";
import { enrollAgent, mintToken, newIdentity } from "./support/agents.js";
import { openStream } from "./support/stream.js";
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

const count = async (text: string, values: unknown[] = []) => Number((await sql.query<{ n: string }>(text, values)).rows[0]?.n);
/** The agent's session row (id and token hash), or undefined. */
const sessionRow = async (agentId: string) => (await sql.query<{ id: string; token_hash: Buffer }>("select id, token_hash from sessions where agent_id = $1", [agentId])).rows[0];
/** The MAC key the gateway tags challenges with, as stored in the database. */
const storedKey = async (): Promise<MacKey> => {
  const { id } = gw.gateway.context.handshakeKeys.signing();
  const row = (await sql.query<{ secret: Buffer }>("select secret from handshake_keys where id = $1", [id])).rows[0];
  if (!row) throw new Error("no handshake key");
  return { id, secret: row.secret };
};
/** Begin, and the signature the agent would send. */
async function beginAndSign(agent: { identity: Identity; registration: { agentId: string } }, c: GatewayClient = client) {
  const challenge = await c.beginAuthHandshake({ agentId: agent.registration.agentId, identityPublicKey: agent.identity.publicKey });
  const transcript = authTranscript({ challengeId: challenge.challengeId, nonce: challenge.nonce, agentId: agent.registration.agentId, publicKey: agent.identity.publicKey });
  return { challenge, signature: sign(agent.identity.privateKey, transcript) };
}

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

  it("refuses an expired challenge, even with a valid tag and signature", async () => {
    const { identity, registration } = await enrollAgent(gw);
    const sessionBefore = await sessionRow(registration.agentId);
    // Minted as the gateway would, with its own key, but expired a second ago.
    const key = await storedKey();
    const id = mintChallengeId(key, registration.agentId, Date.now() - 1_000);
    const nonce = challengeNonce(key, id, registration.agentId, identity.publicKey);
    const signature = sign(identity.privateKey, authTranscript({ challengeId: id.text, nonce, agentId: registration.agentId, publicKey: identity.publicKey }));
    await expectCode(client.completeAuthHandshake({ challengeId: id.text, agentId: registration.agentId, signature }), Code.Unauthenticated, /expired/);
    expect(await sessionRow(registration.agentId)).toEqual(sessionBefore);
    expect(await count("select count(*) as n from used_challenges where id = $1", [id.text])).toBe(0);
  });

  it("answers NotFound for an unknown agent or a key that is not the agent's", async () => {
    const { registration } = await enrollAgent(gw);
    await expectCode(client.beginAuthHandshake({ agentId: registration.agentId, identityPublicKey: newIdentity().publicKey }), Code.NotFound);
    await expectCode(client.beginAuthHandshake({ agentId: crypto.randomUUID(), identityPublicKey: newIdentity().publicKey }), Code.NotFound);
  });
});

describe("stateless challenges", () => {
  it("Begin writes nothing", async () => {
    const agent = await enrollAgent(gw);
    const rows = () => count("select (select count(*) from used_challenges) + (select count(*) from auth_challenges) + (select count(*) from sessions) as n");
    const before = await rows();
    const challenge = await client.beginAuthHandshake({ agentId: agent.registration.agentId, identityPublicKey: agent.identity.publicKey });
    expect(await rows()).toBe(before);
    // Still a canonical lowercase UUID string (clients in other languages and buf curl treat it as one).
    expect(challenge.challengeId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(challenge.nonce).toHaveLength(32);
  });

  it("refuses forged and tampered challenge ids before any database work, and they use nothing up", async () => {
    const agent = await enrollAgent(gw);
    const { challenge, signature } = await beginAndSign(agent);
    const agentId = agent.registration.agentId;
    const used = () => count("select count(*) as n from used_challenges");
    const before = await used();
    const parsed = parseChallengeId(challenge.challengeId);
    if (!parsed) throw new Error("the gateway's challenge id does not parse");
    // The expiry pushed out by an hour, the tag kept: the tag no longer matches.
    const later = Buffer.from(parsed.bytes);
    later.writeUIntBE(parsed.expiresAtMs + 3_600_000, 0, 6);
    const hex = later.toString("hex");
    const moved = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    await expectCode(client.completeAuthHandshake({ challengeId: moved, agentId, signature }), Code.Unauthenticated, /unknown/);
    // A random v4 UUID, and a well-formed id minted with a key the gateway does not hold.
    await expectCode(client.completeAuthHandshake({ challengeId: crypto.randomUUID(), agentId, signature }), Code.Unauthenticated, /unknown/);
    const foreign = mintChallengeId({ id: 1, secret: Buffer.alloc(32, 7) }, agentId, Date.now() + 30_000);
    await expectCode(client.completeAuthHandshake({ challengeId: foreign.text, agentId, signature }), Code.Unauthenticated, /unknown/);
    expect(await used()).toBe(before);
    // The real challenge was not used up by any of that.
    const done = await client.completeAuthHandshake({ challengeId: challenge.challengeId, agentId, signature });
    expect(done.sessionToken).toMatch(/^agws_/);
    expect(await used()).toBe(before + 1);
  });

  it("refuses a signature over a tampered nonce, which uses the challenge up", async () => {
    const agent = await enrollAgent(gw);
    const agentId = agent.registration.agentId;
    const challenge = await client.beginAuthHandshake({ agentId, identityPublicKey: agent.identity.publicKey });
    const tampered = Uint8Array.from(challenge.nonce);
    tampered[0] = (tampered[0] ?? 0) ^ 1;
    const bad = sign(agent.identity.privateKey, authTranscript({ challengeId: challenge.challengeId, nonce: tampered, agentId, publicKey: agent.identity.publicKey }));
    await expectCode(client.completeAuthHandshake({ challengeId: challenge.challengeId, agentId, signature: bad }), Code.Unauthenticated, /does not verify/);
    const good = sign(agent.identity.privateKey, authTranscript({ challengeId: challenge.challengeId, nonce: challenge.nonce, agentId, publicKey: agent.identity.publicKey }));
    await expectCode(client.completeAuthHandshake({ challengeId: challenge.challengeId, agentId, signature: good }), Code.Unauthenticated, /already used/);
  });

  it("lets exactly one of many concurrent Completes of one challenge through", async () => {
    const agent = await enrollAgent(gw);
    const { challenge, signature } = await beginAndSign(agent);
    const request = { challengeId: challenge.challengeId, agentId: agent.registration.agentId, signature };
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => client.completeAuthHandshake(request)));
    const won = results.filter((r) => r.status === "fulfilled");
    expect(won).toHaveLength(1);
    for (const r of results) {
      if (r.status === "rejected") expect(String(r.reason)).toMatch(/already used/);
    }
    const row = await sessionRow(agent.registration.agentId);
    const token = won[0]?.status === "fulfilled" ? won[0].value.sessionToken : "";
    await heartbeat({ token });
    expect(row?.token_hash).toBeDefined();
  });

  it("a challenge for agent A presented by agent B gets B nothing and leaves A's challenge usable", async () => {
    const a = await enrollAgent(gw);
    const b = await enrollAgent(gw);
    const { challenge, signature } = await beginAndSign(a);
    const bSession = await sessionRow(b.registration.agentId);
    const bSignature = sign(b.identity.privateKey, authTranscript({ challengeId: challenge.challengeId, nonce: challenge.nonce, agentId: b.registration.agentId, publicKey: b.identity.publicKey }));
    await expectCode(client.completeAuthHandshake({ challengeId: challenge.challengeId, agentId: b.registration.agentId, signature: bSignature }), Code.Unauthenticated, /another agent/);
    // A's own signature, presented for B, is refused the same way.
    await expectCode(client.completeAuthHandshake({ challengeId: challenge.challengeId, agentId: b.registration.agentId, signature }), Code.Unauthenticated, /another agent/);
    expect(await sessionRow(b.registration.agentId)).toEqual(bSession);
    await client.completeAuthHandshake({ challengeId: challenge.challengeId, agentId: a.registration.agentId, signature });
  });

  it("a revocation committed between Begin and Complete wins, and no session row is written", async () => {
    const agent = await enrollAgent(gw);
    const agentId = agent.registration.agentId;
    const { challenge, signature } = await beginAndSign(agent);
    // Committed behind the gateway's back (no bus message), as a concurrent revocation on
    // another replica would be before its announcement arrives; the old session row is gone.
    await sql.query("update agents set state = 'REVOKED', revoked_at = now(), revoke_reason = 'raced' where id = $1", [agentId]);
    await sql.query("delete from sessions where agent_id = $1", [agentId]);
    const err = await expectCode(client.completeAuthHandshake({ challengeId: challenge.challengeId, agentId, signature }), Code.PermissionDenied, /revoked/);
    expect(reasonOf(err)).toBe(Reason.AGENT_REVOKED);
    expect(await sessionRow(agentId)).toBeUndefined();
  });

  it("a suspended tenant's agent gets TENANT_SUSPENDED and no session row, also before this replica heard of the suspension", async () => {
    const tenant = await createTenantViaProvider(gw, `hs-suspended-${Math.random().toString(36).slice(2, 8)}`);
    const agent = await enrollInto(gw, tenant.adminKey);
    const agentId = agent.registration.agentId;
    try {
      // Suspended in the database only: this replica's in-memory gate does not know yet.
      await sql.query("delete from sessions where agent_id = $1", [agentId]);
      const first = await beginAndSign(agent);
      await sql.query("update tenants set suspended_at = now() where id = $1", [tenant.tenantId]);
      let err = await expectCode(client.completeAuthHandshake({ challengeId: first.challenge.challengeId, agentId, signature: first.signature }), Code.PermissionDenied);
      expect(reasonOf(err)).toBe(Reason.TENANT_SUSPENDED);
      expect(await sessionRow(agentId)).toBeUndefined();
      // Suspended through the provider API: the gate knows, and refuses before the statement.
      await sql.query("update tenants set suspended_at = null where id = $1", [tenant.tenantId]);
      const second = await beginAndSign(agent);
      await gw.admin(TenantService, gw.systemKey).suspendTenant({ id: tenant.tenantId, reason: "test" });
      err = await expectCode(client.completeAuthHandshake({ challengeId: second.challenge.challengeId, agentId, signature: second.signature }), Code.PermissionDenied);
      expect(reasonOf(err)).toBe(Reason.TENANT_SUSPENDED);
      expect(await sessionRow(agentId)).toBeUndefined();
      // Either refusal used the challenge up.
      await gw.admin(TenantService, gw.systemKey).resumeTenant({ id: tenant.tenantId });
      await expectCode(client.completeAuthHandshake({ challengeId: second.challenge.challengeId, agentId, signature: second.signature }), Code.Unauthenticated, /already used/);
    } finally {
      await gw.admin(TenantService, gw.systemKey).resumeTenant({ id: tenant.tenantId }).catch(() => undefined);
    }
  });
});

describe("MAC key rotation", () => {
  it("a new key verifies at once everywhere, signs only after its activation delay, and the previous one keeps verifying", async () => {
    const db = gw.gateway.context.database.db;
    const logger = { warn: () => undefined };
    const patient = new HandshakeKeys(db, logger, 60_000, 150_000);
    const eager = new HandshakeKeys(db, logger, 60_000, 0);
    await patient.start();
    const previous = patient.signing();
    const added = await addHandshakeKey(db);
    try {
      await patient.refresh();
      await eager.start();
      expect(patient.signing().id).toBe(previous.id);
      expect(patient.verifying().map((k) => k.id)).toContain(added);
      expect(eager.signing().id).toBe(added);
      expect(eager.verifying().map((k) => k.id)).toContain(previous.id);
      // What the eager one tags, the patient one verifies, and the other way round.
      const agentId = crypto.randomUUID();
      const fresh = mintChallengeId(eager.signing(), agentId, Date.now() + 30_000);
      expect(keyThatTagged(patient.verifying(), fresh, agentId)?.id).toBe(added);
      const old = mintChallengeId(patient.signing(), agentId, Date.now() + 30_000);
      expect(keyThatTagged(eager.verifying(), old, agentId)?.id).toBe(previous.id);
      expect(keyThatTagged(eager.verifying(), old, crypto.randomUUID())).toBeUndefined();
    } finally {
      await patient.stop();
      await eager.stop();
      // Leave the gateway's own key the newest, as the other tests expect nothing else.
      await sql.query("delete from handshake_keys where id = $1", [added]);
    }
  });
});

describe("two replicas", () => {
  let replica: TestGateway;
  let onReplica: GatewayClient;

  beforeAll(async () => {
    replica = await startTestGateway({ handshakeRatePerAgent: "1000/s:1000" }, gw.database);
    onReplica = gatewayClient(replica.transport);
  });

  afterAll(async () => {
    await replica?.stop();
  });

  it("answers on one replica a challenge minted by the other (one MAC key for all)", async () => {
    const agent = await enrollAgent(gw);
    const { challenge, signature } = await beginAndSign(agent);
    const done = await onReplica.completeAuthHandshake({ challengeId: challenge.challengeId, agentId: agent.registration.agentId, signature });
    await heartbeat({ token: done.sessionToken });
    // And single use holds across them.
    await expectCode(client.completeAuthHandshake({ challengeId: challenge.challengeId, agentId: agent.registration.agentId, signature }), Code.Unauthenticated, /already used/);
  });

  it("a new session fences the previous one out on the other replica; a first session announces nothing", async () => {
    const token = await mintToken(gw);
    const identity = newIdentity();
    const registration = await register(client, { token, identity, name: "fenced-across" });
    const heard: string[] = [];
    const off = replica.gateway.context.bus.subscribe("session_changed", (agentId) => {
      if (agentId === registration.agentId) heard.push(agentId);
    });
    try {
      const first = await handshake(client, registration.agentId, identity);
      // The old session is cached on the replica and holds a stream there.
      await onReplica.uploadHeartbeat({ agentVersion: "1" }, withSession(first));
      const stream = openStream(onReplica, first);
      expect((await stream.next()).kind.case).toBe("welcome");
      await handshake(client, registration.agentId, identity);
      const goAway = await stream.next();
      expect(goAway.kind.case === "goAway" && goAway.kind.value.reason).toBe(GoAwayReason.SESSION_ENDED);
      await expectCode(onReplica.uploadHeartbeat({ agentVersion: "1" }, withSession(first)), Code.Unauthenticated, /replaced/);
      // Notifications arrive in commit order: had the first handshake announced, it would be here too.
      expect(heard).toHaveLength(1);
    } finally {
      off();
    }
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
