import type { Logger } from "pino";
import { AgentWatchHub, announceAgentsUpdated, DEFAULT_WATCH_OPTIONS } from "../agents/agent-watch.js";
import { deleteExpiredChallenges } from "../auth/session-store.js";
import type { AgentEvents } from "../control/agent-events.js";
import { ControlHub } from "../control/control-hub.js";
import { RolloutService } from "../rollout/rollout-service.js";
import { SessionResolver } from "../auth/session-auth.js";
import type { Bus } from "../bus/bus.js";
import type { Config } from "../config/config.js";
import type { Database } from "../db/database.js";
import { HealthStatus } from "../grpc/health.js";
import { HeartbeatCoalescer } from "../ingest/heartbeat-coalescer.js";
import { readReportedVersion, writeHeartbeats } from "../agents/agent-presence-store.js";
import { LivenessSweeper } from "../ingest/liveness-sweeper.js";
import { ApiKeyStore } from "../operators/api-key-store.js";
import { TokenBuckets } from "../ratelimit/token-bucket.js";
import { periodicWorker, type Worker } from "../workers/worker.js";

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
  apiKeys: ApiKeyStore;
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
export function createAppContext(config: Config, logger: Logger, database: Database, bus: Bus): AppContext {
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
  return {
    config,
    logger,
    database,
    bus,
    sessions: new SessionResolver(database.db, bus),
    apiKeys: new ApiKeyStore(database.db),
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
    rateLimits: {
      registerPerSource: new TokenBuckets(config.registerRatePerSource),
      handshakePerAgent: new TokenBuckets(config.handshakeRatePerAgent),
      handshakePerSource: new TokenBuckets(config.handshakeRatePerSource),
      adminAuthFailuresPerSource: new TokenBuckets(config.adminAuthFailureRate),
      uploadItemsPerAgent: new TokenBuckets(config.uploadItemRate),
      uploadBytesPerAgent: new TokenBuckets(config.uploadByteRate),
    },
  };
}

/**
 * The background work, in start order: the bus first (everything else may publish), the live
 * agent feed, the heartbeat flusher, the liveness sweeper, the rollout verifier and the challenge sweeper.
 * The gateway starts them before it listens and stops them in reverse after it stopped taking
 * calls, so the final heartbeat flush and a running verifier pass can still publish.
 */
export function backgroundWorkers(app: AppContext): Worker[] {
  return [
    app.bus,
    app.agentWatch,
    app.heartbeats,
    app.liveness,
    { name: "rollout-verifier", start: () => app.rollouts.startVerifier(), stop: () => app.rollouts.stopVerifier() },
    periodicWorker({
      name: "challenge-sweeper",
      intervalMs: 60_000,
      task: () => deleteExpiredChallenges(app.database.db),
      logger: app.logger,
    }),
  ];
}
