import type { Logger } from "pino";
import { SessionResolver } from "../auth/session-auth.js";
import type { Bus } from "../bus/bus.js";
import type { Config } from "../config/config.js";
import type { Database } from "../db/database.js";
import { HealthStatus } from "../grpc/health.js";
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
  rateLimits: {
    registerPerSource: TokenBuckets;
    handshakePerAgent: TokenBuckets;
    handshakePerSource: TokenBuckets;
  };
}

/** Wires the context's parts together from config and the opened database and bus. */
export function createAppContext(config: Config, logger: Logger, database: Database, bus: Bus): AppContext {
  return {
    config,
    logger,
    database,
    bus,
    sessions: new SessionResolver(database.db, bus),
    apiKeys: new ApiKeyStore(database.db),
    health: new HealthStatus(),
    rateLimits: {
      registerPerSource: new TokenBuckets(config.registerRatePerSource),
      handshakePerAgent: new TokenBuckets(config.handshakeRatePerAgent),
      handshakePerSource: new TokenBuckets(config.handshakeRatePerSource),
    },
  };
}
