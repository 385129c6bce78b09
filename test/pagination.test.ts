// One page-token scheme for every list RPC: opaque keyset positions from server/admin/pagination.ts.
// Driven by the descriptors: every admin RPC with a page_token field refuses a forged token.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { ApiKeyService } from "../gen/agentgateway/admin/v1/api_keys_pb.js";
import { AuditService } from "../gen/agentgateway/admin/v1/audit_pb.js";
import { EnrollmentTokenService } from "../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { ReleaseKeyService } from "../gen/agentgateway/admin/v1/release_keys_pb.js";
import { RolloutService } from "../gen/agentgateway/admin/v1/rollouts_pb.js";
import { enrollAgent, mintToken } from "./support/agents.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";

const ADMIN_SERVICES: DescService[] = [AgentService, ApiKeyService, AuditService, EnrollmentTokenService, ReleaseKeyService, RolloutService];

let gw: TestGateway;
let agentId = "";

beforeAll(async () => {
  gw = await startTestGateway({ registerRatePerSource: "1000/s:1000" });
  agentId = (await enrollAgent(gw)).registration.agentId;
});

afterAll(async () => {
  await gw?.stop();
});

const forged = [
  "not base64 at all!",
  Buffer.from("12").toString("base64url"),
  Buffer.from(JSON.stringify({ i: "x'; drop table agents; --" })).toString("base64url"),
  Buffer.from(JSON.stringify({ c: "yesterday", i: "00000000-0000-4000-8000-000000000000" })).toString("base64url"),
  Buffer.from(JSON.stringify({ t: "99999999999999999999", id: "e" })).toString("base64url"),
];

describe("page tokens", () => {
  const paged = ADMIN_SERVICES.flatMap((s) => s.methods.filter((m) => m.methodKind === "unary" && m.input.fields.some((f) => f.name === "page_token")).map((m) => [s, m] as const));

  it("exist on every list RPC that pages", () => {
    expect(paged.map(([, m]) => m.name).sort()).toEqual(expect.arrayContaining(["ListAgents", "ListEnrollmentTokens", "ListRollouts"]));
  });

  for (const [service, method] of paged) {
    it(`${service.name}.${method.name} refuses forged tokens with INVALID_ARGUMENT naming page_token`, async () => {
      const client = createClient(service, gw.transport) as unknown as Record<string, (req: unknown, opts: unknown) => Promise<unknown>>;
      for (const [n, pageToken] of forged.entries()) {
        const request = { pageToken, ...(method.input.fields.some((f) => f.name === "agent_id") ? { agentId } : {}) };
        const err = await client[method.localName]!(request, { headers: { authorization: `Bearer ${gw.adminKey}` } }).then(
          () => undefined,
          (e: unknown) => ConnectError.from(e),
        );
        // A token that happens to decode to a harmless position for another list is fine; what
        // must never happen is a crash or a silently accepted garbage position.
        // The first three are garbage for every list and must be refused.
        if (n < 3) expect(err, pageToken).toBeDefined();
        if (err === undefined) continue;
        expect(Code[err.code], `${pageToken}: ${err.rawMessage}`).toBe("InvalidArgument");
        expect(err.rawMessage).toContain("page_token");
      }
    });
  }

  it("pages agents and tokens by keyset: every row exactly once", async () => {
    for (let i = 0; i < 4; i++) await enrollAgent(gw);
    for (let i = 0; i < 5; i++) await mintToken(gw, { maxUses: 5 });
    const seenAgents: string[] = [];
    let token = "";
    do {
      const page = await gw.admin(AgentService).listAgents({ pageSize: 2, pageToken: token });
      seenAgents.push(...page.agents.map((a) => a.id));
      token = page.nextPageToken;
    } while (token);
    const all = (await gw.admin(AgentService).listAgents({ pageSize: 1000 })).agents.map((a) => a.id);
    expect(seenAgents).toEqual(all);
    expect(new Set(seenAgents).size).toBe(all.length);
    const seenTokens: string[] = [];
    token = "";
    do {
      const page = await gw.admin(EnrollmentTokenService).listEnrollmentTokens({ pageSize: 2, pageToken: token, includeInactive: true });
      seenTokens.push(...page.tokens.map((t) => t.id));
      token = page.nextPageToken;
    } while (token);
    expect(new Set(seenTokens).size).toBe(seenTokens.length);
    expect(seenTokens.length).toBe((await gw.admin(EnrollmentTokenService).listEnrollmentTokens({ pageSize: 500, includeInactive: true })).tokens.length);
  });
});
