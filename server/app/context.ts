import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import type { RolloutProgress } from "../../gen/agentgateway/v1/control_pb.js";
import { AgentWatchHub, announceAgentsUpdated, DEFAULT_WATCH_OPTIONS } from "../agents/agent-watch.js";
import { ControlHub } from "../control/control-hub.js";
import { RolloutEngine } from "../rollout/rollout-engine.js";
import { SessionResolver } from "../auth/session-auth.js";
import type { Bus } from "../bus/bus.js";
import type { Config } from "../config/config.js";
import type { Database } from "../db/database.js";
import { HealthStatus } from "../grpc/health.js";
import { HeartbeatCoalescer } from "../ingest/heartbeat-coalescer.js";
import { readReportedVersion, writeHeartbeats } from "../ingest/heartbeat-store.js";
import { LivenessSweeper } from "../ingest/liveness-sweeper.js";
import { ApiKeyStore } from "../operators/api-key-store.js";
import { TokenBuckets } from "../ratelimit/token-bucket.js";

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
  rollouts: RolloutEngine;
  /** In-process hooks between capabilities (e.g. rollout progress reported on a stream). */
  events: EventEmitter<AppEvents>;
  rateLimits: {
    registerPerSource: TokenBuckets;
    handshakePerAgent: TokenBuckets;
    handshakePerSource: TokenBuckets;
  };
}

/** In-process events and their arguments. */
export interface AppEvents {
  rolloutProgress: [{ agentId: string; tenantId: string; progress: RolloutProgress }];
}

/** Wires the context's parts together from config and the opened database and bus. */
export function createAppContext(config: Config, logger: Logger, database: Database, bus: Bus): AppContext {
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
    }),
    agentWatch: new AgentWatchHub(database.db, bus, logger, { ...DEFAULT_WATCH_OPTIONS, maxStreamsPerKey: config.watchStreamsPerKey }),
    events: new EventEmitter<AppEvents>(),
    rollouts: new RolloutEngine(database.db, bus, logger),
    rateLimits: {
      registerPerSource: new TokenBuckets(config.registerRatePerSource),
      handshakePerAgent: new TokenBuckets(config.handshakeRatePerAgent),
      handshakePerSource: new TokenBuckets(config.handshakeRatePerSource),
    },
  };
}
