import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { ApiKeyService } from "../../gen/agentgateway/admin/v1/api_keys_pb.js";
import { AgentGatewayService } from "../../gen/agentgateway/v1/gateway_pb.js";
import { UnauthenticatedError } from "../errors/errors.js";
import { errorInterceptor } from "../errors/error-interceptor.js";
import { AccessPolicy } from "./access-policy.js";
import { type Authenticator, apiKeyAuthenticator, identityInterceptor, sessionAuthenticator } from "./identity-interceptor.js";
import { type AgentIdentity, agentOf, type Operator, operatorOf, type Principal, principalOf } from "./principal.js";

const viewer: Operator = { keyId: "k-viewer", tenantId: "t1", role: "viewer", name: "viewer key" };
const admin: Operator = { keyId: "k-admin", tenantId: "t1", role: "admin", name: "admin key" };
const agent: AgentIdentity = { agentId: "a1", tenantId: "t1", sessionId: "s1", expiresAt: new Date(Date.now() + 60_000) };

/** An in-memory router with the real descriptors and policy, stub credentials and handlers that report the principal. */
function harness(extraAgentSources: Authenticator<AgentIdentity>[] = []) {
  const seen: Principal[] = [];
  const keys = { authenticate: async (secret: string) => ({ viewer, admin })[secret as "viewer" | "admin"] };
  const sessions = {
    resolve: async (token: string) => {
      if (token !== "good-session") throw new UnauthenticatedError("session is not valid");
      return agent;
    },
  };
  const interceptor = identityInterceptor(AccessPolicy.fromServices([AgentGatewayService, ApiKeyService]), {
    operators: [apiKeyAuthenticator(keys)],
    agents: [...extraAgentSources, sessionAuthenticator(sessions)],
  });
  const transport = createRouterTransport(
    (router) => {
      router.service(ApiKeyService, {
        whoAmI: (_req, ctx) => {
          seen.push(principalOf(ctx));
          return { tenantId: operatorOf(ctx).tenantId };
        },
        createApiKey: (_req, ctx) => {
          seen.push(principalOf(ctx));
          return {};
        },
      });
      router.service(AgentGatewayService, {
        uploadHeartbeat: (_req, ctx) => {
          seen.push(principalOf(ctx));
          agentOf(ctx);
          return {};
        },
        beginAuthHandshake: (_req, ctx) => {
          seen.push(principalOf(ctx));
          return {};
        },
      });
    },
    { router: { interceptors: [errorInterceptor(pino({ level: "silent" })), interceptor] } },
  );
  const as = (token?: string) => (token ? { headers: { authorization: `Bearer ${token}` } } : {});
  return { seen, keys: createClient(ApiKeyService, transport), agents: createClient(AgentGatewayService, transport), as };
}

async function codeOf(call: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await call;
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: Code[e.code], message: e.rawMessage };
  }
  throw new Error("the call succeeded");
}

describe("identity interceptor", () => {
  it("puts the operator behind a valid key into the context of an operator RPC", async () => {
    const h = harness();
    await h.keys.whoAmI({}, h.as("viewer"));
    expect(h.seen).toEqual([{ kind: "operator", operator: viewer }]);
  });

  it("refuses a viewer key on an admin-role RPC with PERMISSION_DENIED before the handler runs", async () => {
    const h = harness();
    expect(await codeOf(h.keys.createApiKey({}, h.as("viewer")))).toEqual({
      code: "PermissionDenied",
      message: "agentgateway.admin.v1.ApiKeyService/CreateApiKey needs role admin; this key has role viewer",
    });
    expect(h.seen).toEqual([]);
    await h.keys.createApiKey({}, h.as("admin"));
    expect(h.seen).toEqual([{ kind: "operator", operator: admin }]);
  });

  it("refuses operator RPCs without a key, with an unknown key and with a session token", async () => {
    const h = harness();
    expect((await codeOf(h.keys.whoAmI({}))).code).toBe("Unauthenticated");
    expect(await codeOf(h.keys.whoAmI({}, h.as("nope")))).toEqual({ code: "Unauthenticated", message: "operator API key is not valid (unknown or revoked)" });
    expect((await codeOf(h.keys.whoAmI({}, h.as("good-session")))).code).toBe("Unauthenticated");
    expect(h.seen).toEqual([]);
  });

  it("requires a session on agent RPCs and refuses an operator key there", async () => {
    const h = harness();
    expect(await codeOf(h.agents.uploadHeartbeat({}))).toEqual({
      code: "Unauthenticated",
      message: "missing or malformed session token: send Authorization: Bearer <session token>",
    });
    expect((await codeOf(h.agents.uploadHeartbeat({}, h.as("admin")))).code).toBe("Unauthenticated");
    await h.agents.uploadHeartbeat({}, h.as("good-session"));
    expect(h.seen).toEqual([{ kind: "agent", agent }]);
  });

  it("lets anyone call a public RPC, as anonymous even when a credential is sent", async () => {
    const h = harness();
    await h.agents.beginAuthHandshake({});
    await h.agents.beginAuthHandshake({}, h.as("admin"));
    expect(h.seen).toEqual([{ kind: "anonymous" }, { kind: "anonymous" }]);
  });

  it("tries agent authenticators in order: the first that recognises a credential decides", async () => {
    const fromCertificate: AgentIdentity = { ...agent, agentId: "a-cert" };
    const certificate: Authenticator<AgentIdentity> = {
      authenticate: async (call) => (call.header.get("x-test-certificate") === "ok" ? fromCertificate : undefined),
    };
    const h = harness([certificate]);
    await h.agents.uploadHeartbeat({}, { headers: { "x-test-certificate": "ok" } });
    await h.agents.uploadHeartbeat({}, h.as("good-session"));
    expect(h.seen).toEqual([
      { kind: "agent", agent: fromCertificate },
      { kind: "agent", agent },
    ]);
  });

  it("fails closed for a method the policy does not know", async () => {
    const interceptor = identityInterceptor(AccessPolicy.fromServices([]), { operators: [], agents: [] });
    const transport = createRouterTransport((router) => router.service(ApiKeyService, { whoAmI: () => ({}) }), {
      router: { interceptors: [errorInterceptor(pino({ level: "silent" })), interceptor] },
    });
    expect(await codeOf(createClient(ApiKeyService, transport).whoAmI({}, { headers: { authorization: "Bearer admin" } }))).toEqual({
      code: "PermissionDenied",
      message: "agentgateway.admin.v1.ApiKeyService/WhoAmI declares no access",
    });
  });
});
