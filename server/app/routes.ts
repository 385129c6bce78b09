import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import { AgentService } from "../../gen/agentgateway/admin/v1/agents_pb.js";
import { ApiKeyService, file_agentgateway_admin_v1_api_keys } from "../../gen/agentgateway/admin/v1/api_keys_pb.js";
import { AuditService, file_agentgateway_admin_v1_audit } from "../../gen/agentgateway/admin/v1/audit_pb.js";
import { file_agentgateway_admin_v1_agents } from "../../gen/agentgateway/admin/v1/agents_pb.js";
import { EnrollmentTokenService, file_agentgateway_admin_v1_enrollment_tokens } from "../../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { file_agentgateway_admin_v1_release_keys, ReleaseKeyService } from "../../gen/agentgateway/admin/v1/release_keys_pb.js";
import { file_agentgateway_admin_v1_rollouts, RolloutService } from "../../gen/agentgateway/admin/v1/rollouts_pb.js";
import { AgentGatewayService, file_agentgateway_v1_gateway } from "../../gen/agentgateway/v1/gateway_pb.js";
import { file_agentgateway_provider_v1_tenants, ProviderAuditService, SystemKeyService, TenantService } from "../../gen/agentgateway/provider/v1/tenants_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ServerReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1Alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { agentService } from "../agents/agent-admin-handler.js";
import { certificateHandler } from "../ca/certificate-handler.js";
import { agentCommandsHandler } from "../agents/agent-commands-handler.js";
import { agentWatchHandler } from "../agents/agent-watch-handler.js";
import { auditService } from "../audit/audit-handler.js";
import { handshakeHandlers } from "../auth/handshake-handler.js";
import { registerHandler } from "../enrollment/register-handler.js";
import { enrollmentTokenService } from "../enrollment/token-admin-handler.js";
import { registerHealth } from "../grpc/health.js";
import { registerReflection } from "../grpc/reflection.js";
import { controlStreamHandler } from "../control/control-stream-handler.js";
import { heartbeatHandler } from "../ingest/heartbeat-handler.js";
import { ingestAdminHandlers } from "../ingest/ingest-admin-handler.js";
import { ingestHandlers } from "../ingest/ingest-handler.js";
import { releaseKeyService } from "../rollout/release-key-handler.js";
import { rolloutService } from "../rollout/rollout-handler.js";
import { apiKeyService } from "../operators/api-key-handler.js";
import { providerAuditService, systemKeyService, tenantService } from "../tenancy/tenant-handler.js";
import { AccessPolicy } from "../identity/access-policy.js";
import type { AppContext } from "./context.js";

/** Every proto file whose services this gateway serves (for reflection). */
export const SERVED_FILES = [
  file_agentgateway_v1_gateway,
  file_agentgateway_admin_v1_agents,
  file_agentgateway_admin_v1_api_keys,
  file_agentgateway_admin_v1_audit,
  file_agentgateway_admin_v1_enrollment_tokens,
  file_agentgateway_admin_v1_release_keys,
  file_agentgateway_admin_v1_rollouts,
  file_agentgateway_provider_v1_tenants,
];

/**
 * Who may call what: every method of every served service from its `(agentgateway.v1.access)`
 * option; the vendored health and reflection services, whose protos we cannot annotate, are
 * public as every gRPC tool and probe expects. Throws if a served method declares nothing.
 */
export function accessPolicy(): AccessPolicy {
  return AccessPolicy.fromServices(
    SERVED_FILES.flatMap((file) => file.services),
    [Health, ServerReflectionV1, ServerReflectionV1Alpha],
  );
}

/** The agent-facing service's implementation (also served, in part, by the wire path: wire-unary.ts). */
export type AgentGatewayImpl = Partial<ServiceImpl<typeof AgentGatewayService>>;

export function agentGatewayImpl(app: AppContext): AgentGatewayImpl {
  return {
    ...registerHandler(app),
    ...handshakeHandlers(app),
    ...heartbeatHandler(app),
    ...ingestHandlers(app),
    ...controlStreamHandler(app),
    ...certificateHandler(app),
  };
}

/** The unary calls agents make all the time: the wire path serves them in their common form. */
export const WIRE_UNARY_METHODS = ["beginAuthHandshake", "completeAuthHandshake", "uploadHeartbeat", "uploadTelemetry", "uploadEvents"] as const;

/**
 * Registers every service. RPCs whose capability has not landed are left out of the partial
 * implementations, and Connect answers them with UNIMPLEMENTED.
 */
export function registerRoutes(router: ConnectRouter, app: AppContext, gateway: AgentGatewayImpl = agentGatewayImpl(app)): void {
  router.service(AgentGatewayService, gateway);
  router.service(EnrollmentTokenService, enrollmentTokenService(app));
  router.service(ApiKeyService, apiKeyService(app));
  router.service(AgentService, { ...agentService(app), ...ingestAdminHandlers(app), ...agentWatchHandler(app), ...agentCommandsHandler(app) });
  router.service(AuditService, auditService(app));
  router.service(ReleaseKeyService, releaseKeyService(app));
  router.service(RolloutService, rolloutService(app));
  router.service(TenantService, tenantService(app));
  router.service(ProviderAuditService, providerAuditService(app));
  router.service(SystemKeyService, systemKeyService(app));
  registerHealth(router, app.health);
  registerReflection(router, SERVED_FILES);
}
