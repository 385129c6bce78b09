// Isolation proven for every RPC (issue 14 item 2). Two tenants are created through
// TenantService; tenant A gets one of everything (agents in several states, telemetry, events,
// commands, tokens, operator keys, release keys, a rollout, an audit chain). Then every RPC of
// every served service — enumerated from the descriptors, so a new RPC fails the first test
// until it has a case here — is called with each of tenant B's credentials (viewer, editor,
// admin key, agent session) naming A's objects. Every answer is NotFound where it names one of
// A's objects (PermissionDenied / Unauthenticated where the credential may not call it at all),
// no answer or error carries anything of A that B did not send itself, and afterwards A's data
// is exactly what it was (its audit chain did not grow by one record).
import { type DescMethod, type DescService, toJson } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { ApiKeyService, Role } from "../gen/agentgateway/admin/v1/api_keys_pb.js";
import { EnrollmentTokenService } from "../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { ReleaseKeyService } from "../gen/agentgateway/admin/v1/release_keys_pb.js";
import { RolloutService } from "../gen/agentgateway/admin/v1/rollouts_pb.js";
import { RolloutStage } from "../gen/agentgateway/v1/control_pb.js";
import { gatewayClient, register, uploadEvents, uploadTelemetry, withSession } from "../agent/lib/direct.js";
import { signReleaseManifest } from "../cli/release.js";
import { createCertificateRequest } from "../client/protocol/csr.js";
import { generateKeyPair } from "../client/protocol/ed25519.js";
import { SERVED_FILES } from "../server/app/routes.js";
import { declaredAccess, type MethodAccess, roleAllows } from "../server/identity/access-policy.js";
import type { RoleName } from "../server/db/schema.js";
import { type EnrolledAgent, newIdentity } from "./support/agents.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";
import { type CreatedTenant, createTenantViaProvider, enrollInto } from "./support/tenants.js";

let gw: TestGateway;
let a: CreatedTenant;
let b: CreatedTenant;

/** Tenant A's objects: what B names in its requests. */
interface ObjectsOfA {
  agent: EnrolledAgent;
  pendingAgentId: string;
  revokedAgentId: string;
  tokenId: string;
  viewerKeyId: string;
  releaseKeyId: string;
  releasePublicKey: Uint8Array;
  rolloutId: string;
  manifest: ReturnType<typeof signReleaseManifest>;
  pointId: string;
  eventId: string;
}
let A: ObjectsOfA;

/** Strings only tenant A's data contains: none may reach B unless B sent it itself. */
const markers = new Set<string>();
const unique = (prefix: string) => {
  const value = `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
  markers.add(value);
  return value;
};

/** B's credentials: a key of every role, and an agent session. */
type CredentialName = RoleName | "agent";
const credentials: Record<CredentialName, { key?: string; session?: { token: string } }> = { viewer: {}, editor: {}, admin: {}, agent: {} };

beforeAll(async () => {
  gw = await startTestGateway({
    // Nothing may change A behind the test's back: no liveness transitions, no verifier passes that matter.
    livenessSweepInterval: "1h",
    heartbeatFlushInterval: "100ms",
    registerRatePerSource: "1000/s:1000",
    handshakeRatePerAgent: "1000/s:1000",
    handshakeRatePerSource: "1000/s:1000",
    maxStreamsPerCredential: "64",
    // B's agent session presented to operator RPCs counts as a failed key: allow all of them.
    adminAuthFailureRate: "10000/s:100000",
  });
  a = await createTenantViaProvider(gw, unique("tenant-a"));
  b = await createTenantViaProvider(gw, `tenant-b-${Math.random().toString(36).slice(2, 10)}`);
  for (const id of [a.tenantId, a.adminKeyId]) markers.add(id);

  // Tenant A: one of everything.
  const agent = await enrollInto(gw, a.adminKey, unique("a-agent"));
  const client = gatewayClient(gw.transport);
  const { secret: approvalToken, token } = await gw.admin(EnrollmentTokenService, a.adminKey).createEnrollmentToken({ maxUses: 5, requiresApproval: true, description: unique("a-token") });
  const pending = await register(client, { token: approvalToken, identity: newIdentity(), name: unique("a-pending") });
  const revoked = await register(client, { token: approvalToken, identity: newIdentity(), name: unique("a-revoked") });
  await gw.admin(AgentService, a.adminKey).approveAgent({ id: revoked.agentId });
  await gw.admin(AgentService, a.adminKey).revokeAgent({ id: revoked.agentId, reason: unique("a-reason") });
  const viewer = await gw.admin(ApiKeyService, a.adminKey).createApiKey({ name: unique("a-viewer"), role: Role.VIEWER });
  const release = generateKeyPair();
  const { key: releaseKey } = await gw.admin(ReleaseKeyService, a.adminKey).registerReleaseKey({ name: unique("a-release"), publicKey: release.publicKey });
  const manifest = signReleaseManifest(
    { version: "9.9.9", artifactUrl: `https://releases.example.invalid/${unique("a-artifact")}.tgz`, artifactSha256: new Uint8Array(32).fill(9), artifactSize: 99n, notes: unique("a-notes") },
    release.privateKey,
  );
  const { rollout } = await gw.admin(RolloutService, a.adminKey).createRollout({ spec: { manifest } });
  const pointId = unique("a-point");
  const eventId = unique("a-event");
  await uploadTelemetry(client, agent.session, [{ id: pointId, name: unique("a_metric"), value: 42, observedAt: timestampNow() }]);
  await uploadEvents(client, agent.session, [{ id: eventId, type: unique("a_type"), severity: 2, message: unique("a-message"), occurredAt: timestampNow() }]);
  A = {
    agent,
    pendingAgentId: pending.agentId,
    revokedAgentId: revoked.agentId,
    tokenId: token?.id ?? "",
    viewerKeyId: viewer.key?.id ?? "",
    releaseKeyId: releaseKey?.id ?? "",
    releasePublicKey: release.publicKey,
    rolloutId: rollout?.id ?? "",
    manifest,
    pointId,
    eventId,
  };
  for (const id of [agent.registration.agentId, pending.agentId, revoked.agentId, A.tokenId, A.viewerKeyId, A.releaseKeyId, A.rolloutId]) markers.add(id);
  // (A's release public key is no marker: it is public, and B registers a copy of it for itself below.)

  // Tenant B: a key of every role and an agent with a session.
  for (const role of ["viewer", "editor"] as const) {
    const res = await gw.admin(ApiKeyService, b.adminKey).createApiKey({ name: `b-${role}`, role: role === "viewer" ? Role.VIEWER : Role.EDITOR });
    credentials[role].key = res.secret;
  }
  credentials.admin.key = b.adminKey;
  credentials.agent.session = (await enrollInto(gw, b.adminKey, "b-agent")).session;
}, 120_000);

afterAll(async () => {
  await gw?.stop();
});

/** Everything of A that B could have touched, read as A sees it (volatile "last used" left out). */
async function snapshotOfA(): Promise<unknown> {
  const db = gw.gateway.context.database.db;
  const as = <S extends DescService>(s: S) => gw.admin(s, a.adminKey);
  const agents = await as(AgentService).listAgents({ pageSize: 100 });
  const keys = await as(ApiKeyService).listApiKeys({ includeRevoked: true });
  const events = await as(AgentService).listAgentEvents({ agentId: A.agent.registration.agentId });
  const points = await as(AgentService).listAgentTelemetry({ agentId: A.agent.registration.agentId });
  const commands = await db.selectFrom("agent_commands").select(["agent_id", "sequence", "acked_at", "ack_status"]).where("tenant_id", "=", a.tenantId).orderBy("sequence").execute();
  const sessions = await db.selectFrom("sessions").select(["agent_id", "id", "expires_at"]).where("tenant_id", "=", a.tenantId).execute();
  const tenant = await db.selectFrom("tenants").select(["audit_seq", "audit_head", "suspended_at"]).where("id", "=", a.tenantId).executeTakeFirstOrThrow();
  return plain({
    agents: agents.agents,
    keys: keys.keys.map((k) => ({ ...k, lastUsedAt: undefined })),
    tokens: (await as(EnrollmentTokenService).listEnrollmentTokens({ includeInactive: true })).tokens,
    releaseKeys: (await as(ReleaseKeyService).listReleaseKeys({ includeRevoked: true })).keys,
    rollout: (await as(RolloutService).getRollout({ id: A.rolloutId })).rollout,
    events: events.events,
    points: points.points,
    commands,
    sessions,
    tenant,
  });
}

/** JSON-comparable: bigints and bytes as strings. */
function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? `${v}n` : v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v)));
}

type Outcome =
  /** Names one of A's objects: NotFound for a credential allowed to call the RPC. */
  | "not_found"
  /** Acts in B's own tenant (lists, creates, uploads): may answer anything but Internal/Unknown, never with A's data. */
  | "scoped";

interface Case {
  outcome: Outcome;
  /** The request (for a bidi stream: the first message; `more` follow). */
  request: () => unknown | Promise<unknown>;
  more?: () => unknown[];
}

const agentId = () => A.agent.registration.agentId;

/** One case per RPC. A served RPC without an entry fails the test below. */
const CASES: Record<string, Case> = {
  "agentgateway.v1.AgentGatewayService/Register": {
    outcome: "scoped",
    // B's own token, A's agent's name: the agent lands in B.
    request: async () => {
      const { secret } = await gw.admin(EnrollmentTokenService, b.adminKey).createEnrollmentToken({});
      const identity = newIdentity();
      return { enrollmentToken: secret, identityPublicKey: identity.publicKey, name: "a-agent-name-copy", proofSignature: new Uint8Array(64) };
    },
  },
  "agentgateway.v1.AgentGatewayService/BeginAuthHandshake": { outcome: "not_found", request: () => ({ agentId: agentId(), identityPublicKey: newIdentity().publicKey }) },
  "agentgateway.v1.AgentGatewayService/CompleteAuthHandshake": {
    outcome: "not_found",
    request: () => ({ challengeId: crypto.randomUUID(), agentId: agentId(), signature: new Uint8Array(64) }),
  },
  "agentgateway.v1.AgentGatewayService/UploadTelemetry": {
    outcome: "scoped",
    request: () => ({ points: [{ id: A.pointId, name: "b_metric", value: 1, observedAt: timestampNow() }] }),
  },
  "agentgateway.v1.AgentGatewayService/UploadEvents": {
    outcome: "scoped",
    request: () => ({ events: [{ id: A.eventId, type: "b_type", severity: 2, message: "b", occurredAt: timestampNow() }] }),
  },
  "agentgateway.v1.AgentGatewayService/UploadHeartbeat": { outcome: "scoped", request: () => ({ agentVersion: "6.6.6" }) },
  // A certificate for A's agent, bound with A's own identity key, asked for under B's session:
  // a certificate names the session's agent only, so this is B's call about B (refused here).
  "agentgateway.v1.AgentGatewayService/IssueAgentCertificate": {
    outcome: "scoped",
    request: () => {
      const { csrDer, bindingSignature } = createCertificateRequest(agentId(), A.agent.identity.privateKey);
      return { csrDer, bindingSignature };
    },
  },
  "agentgateway.v1.AgentGatewayService/ControlStream": {
    outcome: "scoped",
    request: () => ({ kind: { case: "hello", value: { agentVersion: "1.0.0", lastAppliedSequence: 1000n } } }),
    // Claims progress on A's rollout and acknowledges sequences A's agents have.
    more: () => [
      { kind: { case: "rolloutProgress", value: { rolloutId: A.rolloutId, stage: RolloutStage.SUCCEEDED, message: "b says done" } } },
      { kind: { case: "ack", value: { sequence: 1n } } },
    ],
  },

  "agentgateway.admin.v1.AgentService/ListAgents": { outcome: "scoped", request: () => ({ pageSize: 100 }) },
  "agentgateway.admin.v1.AgentService/GetAgent": { outcome: "not_found", request: () => ({ id: agentId() }) },
  "agentgateway.admin.v1.AgentService/ApproveAgent": { outcome: "not_found", request: () => ({ id: A.pendingAgentId }) },
  "agentgateway.admin.v1.AgentService/RejectAgent": { outcome: "not_found", request: () => ({ id: A.pendingAgentId, reason: "b" }) },
  "agentgateway.admin.v1.AgentService/RevokeAgent": { outcome: "not_found", request: () => ({ id: agentId(), reason: "b revokes" }) },
  "agentgateway.admin.v1.AgentService/UnrevokeAgent": { outcome: "not_found", request: () => ({ id: A.revokedAgentId, note: "b unrevokes" }) },
  "agentgateway.admin.v1.AgentService/RetireAgent": { outcome: "not_found", request: () => ({ id: agentId(), reason: "b" }) },
  "agentgateway.admin.v1.AgentService/ListAgentEvents": { outcome: "not_found", request: () => ({ agentId: agentId() }) },
  "agentgateway.admin.v1.AgentService/ListAgentTelemetry": { outcome: "not_found", request: () => ({ agentId: agentId() }) },
  "agentgateway.admin.v1.AgentService/ListAgentCommands": { outcome: "not_found", request: () => ({ agentId: agentId() }) },
  "agentgateway.admin.v1.AgentService/WatchAgents": { outcome: "scoped", request: () => ({}) },

  "agentgateway.admin.v1.ApiKeyService/CreateApiKey": { outcome: "scoped", request: () => ({ name: "b-made", role: Role.VIEWER }) },
  "agentgateway.admin.v1.ApiKeyService/ListApiKeys": { outcome: "scoped", request: () => ({ includeRevoked: true }) },
  "agentgateway.admin.v1.ApiKeyService/RevokeApiKey": { outcome: "not_found", request: () => ({ id: A.viewerKeyId }) },
  "agentgateway.admin.v1.ApiKeyService/WhoAmI": { outcome: "scoped", request: () => ({}) },

  "agentgateway.admin.v1.AuditService/ListAuditEvents": { outcome: "scoped", request: () => ({ pageSize: 1000 }) },
  "agentgateway.admin.v1.AuditService/VerifyAuditChain": { outcome: "scoped", request: () => ({}) },

  "agentgateway.admin.v1.EnrollmentTokenService/CreateEnrollmentToken": { outcome: "scoped", request: () => ({}) },
  "agentgateway.admin.v1.EnrollmentTokenService/ListEnrollmentTokens": { outcome: "scoped", request: () => ({ includeInactive: true }) },
  "agentgateway.admin.v1.EnrollmentTokenService/RevokeEnrollmentToken": { outcome: "not_found", request: () => ({ id: A.tokenId }) },

  // B may register A's (public) release key for itself: it then signs for B only.
  "agentgateway.admin.v1.ReleaseKeyService/RegisterReleaseKey": { outcome: "scoped", request: () => ({ name: "b-copy", publicKey: A.releasePublicKey }) },
  "agentgateway.admin.v1.ReleaseKeyService/ListReleaseKeys": { outcome: "scoped", request: () => ({ includeRevoked: true }) },
  "agentgateway.admin.v1.ReleaseKeyService/RevokeReleaseKey": { outcome: "not_found", request: () => ({ id: A.releaseKeyId }) },

  // A's signed manifest in B: targets B's agents only, or is refused.
  "agentgateway.admin.v1.RolloutService/PlanRollout": { outcome: "scoped", request: () => ({ spec: { manifest: A.manifest } }) },
  "agentgateway.admin.v1.RolloutService/CreateRollout": { outcome: "scoped", request: () => ({ spec: { manifest: A.manifest } }) },
  "agentgateway.admin.v1.RolloutService/StartRollout": { outcome: "not_found", request: () => ({ id: A.rolloutId }) },
  "agentgateway.admin.v1.RolloutService/AdvanceRollout": { outcome: "not_found", request: () => ({ id: A.rolloutId }) },
  "agentgateway.admin.v1.RolloutService/HaltRollout": { outcome: "not_found", request: () => ({ id: A.rolloutId, reason: "b halts" }) },
  "agentgateway.admin.v1.RolloutService/ResumeRollout": { outcome: "not_found", request: () => ({ id: A.rolloutId, note: "b resumes" }) },
  "agentgateway.admin.v1.RolloutService/CancelRollout": { outcome: "not_found", request: () => ({ id: A.rolloutId, reason: "b" }) },
  "agentgateway.admin.v1.RolloutService/RetryFailedMembers": { outcome: "not_found", request: () => ({ id: A.rolloutId }) },
  "agentgateway.admin.v1.RolloutService/GetRollout": { outcome: "not_found", request: () => ({ id: A.rolloutId }) },
  "agentgateway.admin.v1.RolloutService/ListRollouts": { outcome: "scoped", request: () => ({}) },
  "agentgateway.admin.v1.RolloutService/WatchRollout": { outcome: "not_found", request: () => ({ id: A.rolloutId }) },

  // The provider plane: no tenant credential reaches it at all.
  "agentgateway.provider.v1.TenantService/CreateTenant": { outcome: "not_found", request: () => ({ name: "b-made-tenant" }) },
  "agentgateway.provider.v1.TenantService/ListTenants": { outcome: "not_found", request: () => ({}) },
  "agentgateway.provider.v1.TenantService/GetTenant": { outcome: "not_found", request: () => ({ id: a.tenantId }) },
  "agentgateway.provider.v1.TenantService/SuspendTenant": { outcome: "not_found", request: () => ({ id: a.tenantId, reason: "b" }) },
  "agentgateway.provider.v1.TenantService/ResumeTenant": { outcome: "not_found", request: () => ({ id: a.tenantId }) },
  "agentgateway.provider.v1.TenantService/DeleteTenant": { outcome: "not_found", request: () => ({ id: a.tenantId }) },
  "agentgateway.provider.v1.ProviderAuditService/ListProviderAuditEvents": { outcome: "not_found", request: () => ({}) },
  "agentgateway.provider.v1.ProviderAuditService/VerifyProviderAuditChain": { outcome: "not_found", request: () => ({}) },
  "agentgateway.provider.v1.SystemKeyService/WhoAmI": { outcome: "not_found", request: () => ({}) },
  "agentgateway.provider.v1.SystemKeyService/RotateSystemKey": { outcome: "not_found", request: () => ({ name: "b-rotated" }) },
};

const SERVICES: DescService[] = SERVED_FILES.flatMap((f) => f.services);
const nameOf = (m: DescMethod) => `${m.parent.typeName}/${m.name}`;

/**
 * What a credential must get before the case's outcome applies: the wrong kind of credential
 * for the RPC, or too weak a role, is refused outright.
 */
function refusedUpFront(access: MethodAccess, cred: CredentialName): Code[] | undefined {
  switch (access.caller) {
    case "public":
      return undefined;
    case "agent":
      return cred === "agent" ? undefined : [Code.Unauthenticated];
    case "operator":
      if (cred === "agent") return [Code.Unauthenticated];
      return roleAllows(cred, access.role) ? undefined : [Code.PermissionDenied];
    case "system":
      return cred === "agent" ? [Code.Unauthenticated] : [Code.PermissionDenied];
  }
}

interface Answer {
  code: Code | "OK";
  text: string;
}

/** Calls one RPC as one of B's credentials; returns the code and everything the gateway said. */
async function callAs(service: DescService, method: DescMethod, cred: CredentialName, c: Case): Promise<Answer & { sent: string }> {
  const credential = credentials[cred];
  const headers: Record<string, string> = credential.key ? { authorization: `Bearer ${credential.key}` } : credential.session ? withSession(credential.session).headers : {};
  const client = createClient(service, gw.transport) as unknown as Record<string, (...args: unknown[]) => unknown>;
  const fn = client[method.localName] as (...args: unknown[]) => unknown;
  const request = await c.request();
  const more = c.more?.() ?? [];
  const sent = JSON.stringify(plain([request, more]));
  const signal = AbortSignal.timeout(5_000);
  const said: string[] = [];
  const record = (schema: DescMethod["output"], m: unknown) => said.push(JSON.stringify(toJson(schema, m as never)));
  try {
    if (method.methodKind === "unary") {
      record(method.output, await fn(request, { headers, signal }));
    } else if (method.methodKind === "server_streaming") {
      for await (const m of fn(request, { headers, signal }) as AsyncIterable<unknown>) {
        record(method.output, m);
        break;
      }
    } else {
      const done = new AbortController();
      const input = (async function* () {
        yield request;
        for (const m of more) yield m;
        await new Promise((resolve) => done.signal.addEventListener("abort", resolve));
      })();
      try {
        for await (const m of fn(input, { headers, signal }) as AsyncIterable<unknown>) {
          record(method.output, m);
          break;
        }
      } finally {
        done.abort();
      }
    }
    return { code: "OK", text: said.join("\n"), sent };
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, text: `${e.rawMessage}\n${said.join("\n")}`, sent };
  }
}

describe("tenant isolation on every RPC", () => {
  it("has a case for every served RPC (a new RPC fails here until it has one)", () => {
    const served = SERVICES.flatMap((s) => s.methods.map(nameOf));
    expect(served.filter((m) => !(m in CASES))).toEqual([]);
    expect(Object.keys(CASES).filter((m) => !served.includes(m))).toEqual([]);
  });

  it("answers tenant B's credentials on tenant A's objects with NotFound (or a refusal of the credential), leaks nothing, changes nothing", async () => {
    const before = await snapshotOfA();
    const failures: string[] = [];
    let calls = 0;
    for (const service of SERVICES) {
      for (const method of service.methods) {
        const c = CASES[nameOf(method)];
        if (!c) continue;
        const access = declaredAccess(method);
        for (const cred of ["viewer", "editor", "admin", "agent"] as const) {
          const answer = await callAs(service, method, cred, c);
          calls++;
          const label = `${nameOf(method)} as B's ${cred}: ${answer.code === "OK" ? "OK" : Code[answer.code]}`;
          const upFront = refusedUpFront(access, cred);
          if (upFront) {
            if (answer.code === "OK" || !upFront.includes(answer.code)) failures.push(`${label}, expected ${upFront.map((x) => Code[x]).join("/")}`);
          } else if (c.outcome === "not_found") {
            // Public RPCs take no tenant credential: an unknown-to-you object may also be Unauthenticated there.
            const allowed = access.caller === "public" ? [Code.NotFound, Code.PermissionDenied, Code.Unauthenticated] : [Code.NotFound];
            if (answer.code === "OK" || !allowed.includes(answer.code)) failures.push(`${label}, expected ${allowed.map((x) => Code[x]).join("/")}: ${answer.text.slice(0, 200)}`);
          } else if (answer.code === Code.Internal || answer.code === Code.Unknown) {
            failures.push(`${label}: ${answer.text.slice(0, 200)}`);
          }
          const leaked = [...markers].filter((m) => answer.text.includes(m) && !answer.sent.includes(m));
          if (leaked.length > 0) failures.push(`${label} leaked ${leaked.join(", ")}`);
        }
      }
    }
    expect(failures).toEqual([]);
    expect(calls).toBe(Object.keys(CASES).length * 4);
    expect(await snapshotOfA()).toEqual(before);
    // The attack can fail: A's own admin key sees A's objects through the same calls.
    const own = await gw.admin(AgentService, a.adminKey).getAgent({ id: agentId() });
    expect(own.agent?.id).toBe(agentId());
  }, 120_000);

  it("has B's own calls land in B: the agent B registered with A's agent's name is B's", async () => {
    const agents = await gw.admin(AgentService, b.adminKey).listAgents({ pageSize: 100 });
    expect(agents.agents.some((x) => x.name === "a-agent-name-copy")).toBe(false); // the forged proof was refused
    const mine = await gw.admin(ApiKeyService, b.adminKey).listApiKeys({});
    expect(mine.keys.some((k) => k.name === "b-made")).toBe(true);
  });
});
