import { EnrollmentTokenService } from "../../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { AgentService } from "../../gen/agentgateway/admin/v1/agents_pb.js";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { gatewayClient, handshake, type Identity, register, type Registration, type Session } from "../../agent/lib/direct.js";
import { generateKeyPair } from "../../client/protocol/ed25519.js";
import type { TestGateway } from "./gateway.js";

/** A new identity key pair. */
export function newIdentity(): Identity {
  return generateKeyPair();
}

/** Mints an enrollment token as the admin. */
export async function mintToken(
  gw: TestGateway,
  options: { maxUses?: number; requiresApproval?: boolean; pinnedAgentName?: string; ttlMs?: number; labels?: Record<string, string> } = {},
): Promise<string> {
  const res = await gw.admin(EnrollmentTokenService).createEnrollmentToken({
    maxUses: options.maxUses ?? 1,
    requiresApproval: options.requiresApproval ?? false,
    pinnedAgentName: options.pinnedAgentName ?? "",
    labels: options.labels ?? {},
    ...(options.ttlMs ? { ttl: durationFromMs(options.ttlMs) } : {}),
  });
  return res.secret;
}

/** An enrolled, active agent with a session: the common starting point of tests. */
export interface EnrolledAgent {
  identity: Identity;
  registration: Registration;
  session: Session;
}

/** Mints a token, registers a new identity (approving it if asked), and handshakes. */
export async function enrollAgent(gw: TestGateway, name = `agent-${Math.random().toString(36).slice(2, 8)}`, options: { requiresApproval?: boolean } = {}): Promise<EnrolledAgent> {
  const client = gatewayClient(gw.transport);
  const identity = newIdentity();
  const token = await mintToken(gw, { requiresApproval: options.requiresApproval ?? false });
  const registration = await register(client, { token, identity, name });
  if (options.requiresApproval) await gw.admin(AgentService).approveAgent({ id: registration.agentId });
  const session = await handshake(client, registration.agentId, identity);
  return { identity, registration, session };
}

/** Creates another tenant with an admin key, straight through the gateway's own store. */
export async function createTenant(gw: TestGateway, name: string): Promise<{ tenantId: string; adminKey: string }> {
  const { db } = gw.gateway.context.database;
  const tenantId = crypto.randomUUID();
  await db.insertInto("tenants").values({ id: tenantId, name }).execute();
  const { secret } = await gw.gateway.context.apiKeys.create(db, { tenantId, name: "admin", role: "admin", createdBy: "test" });
  return { tenantId, adminKey: secret };
}
