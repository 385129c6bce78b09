import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TenantService } from "../gen/agentgateway/provider/v1/tenants_pb.js";
import { ApiKeyService } from "../gen/agentgateway/admin/v1/api_keys_pb.js";
import { EnrollmentTokenService } from "../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { gatewayClient, handshake, register, withSession } from "../agent/lib/direct.js";
import { adminClient } from "./support/admin.js";
import { newIdentity } from "./support/agents.js";
import { type GatewayProcess, spawnGateway } from "./support/gateway-process.js";
import { openStream } from "./support/stream.js";

// The README's first command: the gateway on its embedded database (PGlite), no PostgreSQL.
let dataDir: string;
let gateway: GatewayProcess;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "agw-embedded-"));
  gateway = await spawnGateway({ DATABASE_URL: "", AGW_DATA_DIR: dataDir, AGW_BOOTSTRAP_ADMIN_KEY: "" }, 60_000);
}, 90_000);

afterAll(async () => {
  await gateway?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("embedded default (PGlite)", () => {
  it("prints where it listens and the generated admin key once, and the key works", async () => {
    const key = /\n\s+(agwk_[A-Za-z0-9_-]{43})\n/.exec(gateway.output())?.[1];
    expect(key).toBeDefined();
    const admin = adminClient(ApiKeyService, gateway.url, key ?? "", "1.1");
    const me = await admin.whoAmI({});
    expect(me.tenantName).toBe("default");
    expect(gateway.output().match(/agwk_/g)).toHaveLength(1);
  });

  it("prints the generated system key once too, and it manages tenants (migration 0009 on PGlite)", async () => {
    const systemKey = /\n\s+(agwp_[A-Za-z0-9_-]{43})\n/.exec(gateway.output())?.[1] ?? "";
    expect(systemKey).not.toBe("");
    expect(gateway.output().match(/agwp_/g)).toHaveLength(1);
    const tenants = adminClient(TenantService, gateway.url, systemKey, "1.1");
    const created = await tenants.createTenant({ name: "smoke-tenant" });
    const me = await adminClient(ApiKeyService, gateway.url, created.adminKeySecret, "1.1").whoAmI({});
    expect(me.tenantName).toBe("smoke-tenant");
    await tenants.suspendTenant({ id: created.tenant?.id ?? "", reason: "smoke" });
    await expect(adminClient(ApiKeyService, gateway.url, created.adminKeySecret, "1.1").whoAmI({})).rejects.toThrow(/suspended/);
  });

  it("is healthy over gRPC and serves the agent flow end to end", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: gateway.url }));
    expect((await health.check({})).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    const key = /\n\s+(agwk_[A-Za-z0-9_-]{43})\n/.exec(gateway.output())?.[1] ?? "";
    const transport = createConnectTransport({ baseUrl: gateway.url, httpVersion: "2" });
    const { secret } = await adminClient(EnrollmentTokenService, gateway.url, key).createEnrollmentToken({});
    const client = gatewayClient(transport);
    const identity = newIdentity();
    const reg = await register(client, { token: secret, identity, name: `smoke-${randomBytes(3).toString("hex")}` });
    const session = await handshake(client, reg.agentId, identity);
    await client.uploadHeartbeat({ agentVersion: "1.0.0" }, withSession(session));
    const stream = openStream(client, session);
    expect((await stream.next()).kind.case).toBe("welcome");
    stream.close();
  });
});
