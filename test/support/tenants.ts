import { EnrollmentTokenService } from "../../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { TenantService } from "../../gen/agentgateway/provider/v1/tenants_pb.js";
import { gatewayClient, handshake, register } from "../../agent/lib/direct.js";
import { type EnrolledAgent, newIdentity } from "./agents.js";
import type { TestGateway } from "./gateway.js";

/** A tenant created through TenantService with the system key, and its first admin key. */
export interface CreatedTenant {
  tenantId: string;
  name: string;
  adminKey: string;
  adminKeyId: string;
}

/** Creates a tenant as the provider does: TenantService.CreateTenant with the system key. */
export async function createTenantViaProvider(gw: TestGateway, name: string): Promise<CreatedTenant> {
  const res = await gw.admin(TenantService, gw.systemKey).createTenant({ name });
  return { tenantId: res.tenant?.id ?? "", name, adminKey: res.adminKeySecret, adminKeyId: res.adminKeyId };
}

/** Mints a token with the tenant's key, registers a new identity with it and handshakes. */
export async function enrollInto(gw: TestGateway, adminKey: string, name = `agent-${Math.random().toString(36).slice(2, 8)}`): Promise<EnrolledAgent> {
  const client = gatewayClient(gw.transport);
  const identity = newIdentity();
  const { secret } = await gw.admin(EnrollmentTokenService, adminKey).createEnrollmentToken({ maxUses: 1 });
  const registration = await register(client, { token: secret, identity, name });
  const session = await handshake(client, registration.agentId, identity);
  return { identity, registration, session };
}
