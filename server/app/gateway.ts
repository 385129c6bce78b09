import { readFileSync } from "node:fs";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createValidateInterceptor } from "@connectrpc/validate";
import type { Logger } from "pino";
import { sessionAuthInterceptor } from "../auth/session-auth.js";
import { deleteExpiredChallenges } from "../auth/handshake.js";
import { type Bus, MemoryBus } from "../bus/bus.js";
import { PgBus } from "../bus/pg-bus.js";
import type { Config } from "../config/config.js";
import { migrateToLatest, openDatabase } from "../db/database.js";
import { errorInterceptor } from "../errors/error-interceptor.js";
import type { ConnectionGuardStats } from "../http/connection-guard.js";
import { listen, type Listener } from "../http/listener.js";
import { operatorAuthInterceptor } from "../operators/operator-auth.js";
import { type BootstrapResult, bootstrapTenant } from "../tenancy/bootstrap.js";
import { type AppContext, createAppContext } from "./context.js";
import { peerContextValues } from "./peer.js";
import { registerRoutes } from "./routes.js";
import { HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";

/** A running gateway. */
export interface Gateway {
  url: string;
  address: { host: string; port: number };
  context: AppContext;
  bootstrap: BootstrapResult;
  /** Connections the guard refused or closed (timeouts, caps) since start. */
  connections: ConnectionGuardStats;
  /** Graceful stop: refuse new calls, let open ones finish within the grace period, close the database. */
  stop(): Promise<void>;
}

/**
 * Opens the database, migrates it, creates the default tenant on first start and serves every
 * service on one port. The order matters: nothing listens before the schema is current.
 */
export async function startGateway(config: Config, logger: Logger): Promise<Gateway> {
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.dbPoolSize, logger });
  const applied = await migrateToLatest(database.db);
  if (applied.length > 0) logger.info({ migrations: applied }, "database migrated");
  // Replicas share PostgreSQL, so they share its LISTEN/NOTIFY; the embedded database has one
  // process by construction. A bus reconnect resynchronises the hub from the tables.
  let onResync = () => {};
  const bus: Bus = database.url ? await PgBus.start(database.url, logger, () => onResync()) : new MemoryBus();
  const app = createAppContext(config, logger, database, bus);
  onResync = () => {
    app.sessions.clear();
    app.control.resync();
  };
  const bootstrap = await bootstrapTenant(database.db, app.apiKeys, {
    tenantName: config.defaultTenant,
    bootstrapAdminKey: config.bootstrapAdminKey,
  });
  const handler = connectNodeAdapter({
    routes: (router) => registerRoutes(router, app),
    // Order: errors are mapped last (outermost); identity is resolved before validation so an
    // unauthenticated caller learns nothing about the request shape.
    interceptors: [errorInterceptor(logger), operatorAuthInterceptor(app.apiKeys), sessionAuthInterceptor(app.sessions), createValidateInterceptor()],
    readMaxBytes: config.maxMessageBytes,
    contextValues: peerContextValues,
  });
  const tls = config.tls ? { cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) } : undefined;
  const listener: Listener = await listen({ host: config.listen.host, port: config.listen.port, handler, limits: config.connections, ...(tls ? { tls } : {}) });
  app.health.set("", ServingStatus.SERVING);
  app.heartbeats.start();
  app.liveness.start();
  app.rollouts.startVerifier();
  app.events.on("rolloutProgress", ({ agentId, tenantId, progress }) => {
    app.rollouts
      .recordProgress({ tenantId, agentId, rolloutId: progress.rolloutId, stage: progress.stage, message: progress.message })
      .catch((err) => logger.warn({ err, agentId }, "recording rollout progress failed"));
  });
  const sweeper = setInterval(() => {
    deleteExpiredChallenges(database.db).catch((err) => logger.warn({ err }, "challenge sweep failed"));
  }, 60_000);
  sweeper.unref();
  logger.info({ url: listener.url, replica: config.replicaId, database: database.kind }, "gateway listening");
  let stopping: Promise<void> | undefined;
  return {
    url: listener.url,
    address: listener.address,
    context: app,
    bootstrap,
    connections: listener.guard.stats,
    stop: () => {
      stopping ??= (async () => {
        clearInterval(sweeper);
        app.health.shutdown();
        // Streams first: agents get a jittered reconnect hint instead of a cut connection.
        app.control.drain();
        await listener.close(config.shutdownGraceMs);
        // No more calls can arrive: write the last heartbeats before the database closes.
        await app.liveness.stop();
        await app.rollouts.stopVerifier();
        await app.heartbeats.stop().catch((err) => logger.warn({ err, pending: app.heartbeats.size }, "final heartbeat flush failed"));
        await app.control.close();
        app.sessions.close();
        await bus.close();
        await database.close();
        logger.info("gateway stopped");
      })();
      return stopping;
    },
  };
}
