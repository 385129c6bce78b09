import type { Logger } from "pino";
import { AgentWatchHub, announceAgentsUpdated, DEFAULT_WATCH_OPTIONS } from "../agents/agent-watch.js";
import type { AgentEvents } from "../control/agent-events.js";
import { ControlHub } from "../control/control-hub.js";
import { RolloutService } from "../rollout/rollout-service.js";
import { SessionResolver } from "../auth/session-auth.js";
import { HandshakeService } from "../auth/handshake.js";
import { HandshakeKeys } from "../auth/handshake-keys.js";
import type { CaService } from "../ca/ca-service.js";
import { ClientCertificateGate } from "../ca/cert-gate.js";
import { AgentDenyList } from "../ca/deny-list.js";
import type { Bus } from "../bus/bus.js";
import type { Config } from "../config/config.js";
import type { Database } from "../db/database.js";
import { HealthStatus } from "../grpc/health.js";
import { HeartbeatCoalescer } from "../ingest/heartbeat-coalescer.js";
import { readReportedVersion, writeHeartbeats } from "../agents/agent-presence-store.js";
import { LivenessSweeper } from "../ingest/liveness-sweeper.js";
import { ApiKeyStore } from "../operators/api-key-store.js";
import { TokenBuckets } from "../ratelimit/token-bucket.js";
import { RetentionSweeper } from "../workers/retention.js";
import { TenantGate } from "../tenancy/tenant-gate.js";
import { SystemKeyService } from "../tenancy/system-key-service.js";
import { TenantService } from "../tenancy/tenant-service.js";
import type { Worker } from "../workers/worker.js";

/**
 * Everything a handler may need, built once at start (the only composition root). Tests build
 * it through startGateway() with their own config.
 */
export interface AppContext {
  config: Config;
  logger: Logger;
  database: Database;
  bus: Bus;
  sessions: SessionResolver;
  /** The MAC keys of stateless handshake challenges (read from the database at start). */
  handshakeKeys: HandshakeKeys;
  /** BeginAuthHandshake and CompleteAuthHandshake. */
  handshakes: HandshakeService;
  apiKeys: ApiKeyStore;
  /** Which tenants are suspended (held in memory, fed by the bus); refuses their calls and ends their streams. */
  tenantGate: TenantGate;
  /** The provider plane: creating, suspending, resuming and deleting tenants. */
  tenants: TenantService;
  /** The provider's system key: rotation. */
  systemKeys: SystemKeyService;
  health: HealthStatus;
  /** Latest heartbeat per agent, written in batches; `reportedVersion()` is the version an agent last reported. */
  heartbeats: HeartbeatCoalescer;
  /** Records ONLINE/STALE/OFFLINE transitions in the audit log (started by the gateway). */
  liveness: LivenessSweeper;
  /** The ControlStreams this replica holds. */
  control: ControlHub;
  /** Live agent feeds (WatchAgents) of this replica, fed from the bus. */
  agentWatch: AgentWatchHub;
  /** Staged rollouts and their verifier. */
  rollouts: RolloutService;
  /** Where the ControlStream hands what agents report to the capabilities that act on it. */
  agentEvents: AgentEvents;
  /** The internal CA (undefined without AGW_CA_KEY). */
  ca: CaService | undefined;
  /** Agents whose client certificates the TLS layer refuses (kept current by the bus). */
  denyList: AgentDenyList;
  /** Decides each TLS connection's client certificate (mTLS). */
  certificateGate: ClientCertificateGate;
  /** Deletes telemetry, events, acked commands and expired sessions/challenges past their age. */
  retention: RetentionSweeper;
  rateLimits: {
    registerPerSource: TokenBuckets;
    handshakePerAgent: TokenBuckets;
    handshakePerSource: TokenBuckets;
    adminAuthFailuresPerSource: TokenBuckets;
    uploadItemsPerAgent: TokenBuckets;
    uploadBytesPerAgent: TokenBuckets;
  };
}

/** Wires the context's parts together from config and the opened database and bus. */
export function createAppContext(config: Config, logger: Logger, database: Database, bus: Bus, parts: { ca?: CaService } = {}): AppContext {
  const rollouts = new RolloutService(database.db, bus, logger, config.rolloutVerifyIntervalMs);
  // Live views hear of heartbeat-level changes and liveness transitions through the bus, so a
  // console connected to any replica sees them; failures only delay a view, never the write.
  const announce = (ids: string[]) => {
    if (ids.length > 0) announceAgentsUpdated(bus, ids).catch((err) => logger.warn({ err }, "announcing agent updates failed"));
  };
  const writeAndAnnounce = async (reports: Parameters<typeof writeHeartbeats>[1]) => {
    const result = await writeHeartbeats(database.db, reports, new Date(Date.now() - config.staleAfterMs));
    announce(result.notable);
    return result;
  };
  const denyList = new AgentDenyList(database.db, bus, logger);
  const apiKeys = new ApiKeyStore(database.db);
  const tenantGate = new TenantGate(database.db, bus, logger);
  const handshakeKeys = new HandshakeKeys(database.db, logger);
  return {
    config,
    logger,
    database,
    bus,
    ca: parts.ca,
    denyList,
    certificateGate: new ClientCertificateGate(config.ca?.trustDomain ?? "", denyList),
    sessions: new SessionResolver(database.db, bus, config.sessionCacheMs),
    handshakeKeys,
    handshakes: new HandshakeService(database.db, { keys: handshakeKeys, tenantGate, bus }),
    apiKeys,
    tenantGate,
    tenants: new TenantService(database.db, bus, apiKeys, tenantGate),
    systemKeys: new SystemKeyService(database.db),
    health: new HealthStatus(),
    heartbeats: new HeartbeatCoalescer(
      { write: writeAndAnnounce, readVersion: (agentId) => readReportedVersion(database.db, agentId) },
      { intervalMs: config.heartbeatFlushIntervalMs, logger },
    ),
    liveness: new LivenessSweeper(database.db, {
      intervalMs: config.livenessSweepIntervalMs,
      staleAfterMs: config.staleAfterMs,
      offlineAfterMs: config.offlineAfterMs,
      logger,
      onTransitions: (transitions) => announce(transitions.map((t) => t.agentId)),
    }),
    control: new ControlHub(database.db, bus, logger, {
      replicaId: config.replicaId,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      maxStreamAgeMs: config.streamMaxAgeMs,
      pingIntervalMs: config.streamPingIntervalMs,
      drainSpreadMs: config.drainSpreadMs,
      admission: { handshakes: config.maxInflightHandshakes, streamOpens: config.maxInflightStreamOpens, retrySpreadMs: config.shedRetrySpreadMs },
    }),
    agentWatch: new AgentWatchHub(database.db, bus, logger, DEFAULT_WATCH_OPTIONS),
    rollouts,
    agentEvents: {
      rolloutProgress: (report) => {
        rollouts.recordProgress(report).catch((err) => logger.warn({ err, agentId: report.agentId }, "recording rollout progress failed"));
      },
    },
    retention: new RetentionSweeper(database, config.retention, logger),
    rateLimits: {
      registerPerSource: new TokenBuckets(config.registerRatePerSource).named("register_per_source"),
      handshakePerAgent: new TokenBuckets(config.handshakeRatePerAgent).named("handshake_per_agent"),
      handshakePerSource: new TokenBuckets(config.handshakeRatePerSource).named("handshake_per_source"),
      adminAuthFailuresPerSource: new TokenBuckets(config.adminAuthFailureRate).named("admin_auth_failures_per_source"),
      uploadItemsPerAgent: new TokenBuckets(config.uploadItemRate).named("upload_items_per_agent"),
      uploadBytesPerAgent: new TokenBuckets(config.uploadByteRate).named("upload_bytes_per_agent"),
    },
  };
}

/**
 * The background work, in start order: the bus first (everything else may publish), the tenant
 * gate (the suspended set must be read before any call is admitted), the handshake keys, the live agent feed, the
 * heartbeat flusher, the liveness sweeper, the rollout verifier and the retention sweeper (which
 * also removes expired challenges).
 * The gateway starts them before it listens and stops them in reverse after it stopped taking
 * calls, so the final heartbeat flush and a running verifier pass can still publish.
 */
export function backgroundWorkers(app: AppContext): Worker[] {
  return [
    app.bus,
    app.tenantGate,
    app.handshakeKeys,
    ...(app.config.agentAuth !== "session" ? [app.denyList] : []),
    app.agentWatch,
    app.heartbeats,
    app.liveness,
    { name: "rollout-verifier", start: () => app.rollouts.startVerifier(), stop: () => app.rollouts.stopVerifier() },
    app.retention,
  ];
}
