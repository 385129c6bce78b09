import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createValidateInterceptor } from "@connectrpc/validate";
import type { Logger } from "pino";
import { type Bus, MemoryBus } from "../bus/bus.js";
import { PgBus } from "../bus/pg-bus.js";
import type { Config } from "../config/config.js";
import { openDatabase } from "../db/database.js";
import { migrateDatabase } from "../db/migrate.js";
import { errorInterceptor } from "../errors/error-interceptor.js";
import type { ConnectionGuardStats } from "../http/connection-guard.js";
import { adminConsole } from "../http/admin-static.js";
import { corsForAdmin } from "../http/cors.js";
import { withHealthEndpoints } from "../http/health-endpoints.js";
import { listen, type Listener } from "../http/listener.js";
import { storableInputInterceptor } from "../validation/storable-interceptor.js";
import { requestValidator } from "../validation/request-validator.js";
import { requestRules } from "../validation/request-rules.js";
import { StreamCaps, streamCapInterceptor } from "../identity/stream-cap-interceptor.js";
import { WireControlStream } from "../control/wire-control-stream.js";
import { WireUnary, wireUnaryMethods } from "../wire/wire-unary.js";
import { withWirePaths } from "./wire-paths.js";
import { AgentGatewayService } from "../../gen/agentgateway/v1/gateway_pb.js";
import { apiKeyAuthenticator, type AuthFailureLimit, identityInterceptor, sessionAuthenticator } from "../identity/identity-interceptor.js";
import { certificateBoundSessions } from "../ca/cert-auth.js";
import { openCa, listenerTls, renewServingCertificate, SERVING_CERT_TTL_MS } from "../ca/ca-setup.js";
import { observeGateway } from "../observability/gateway-metrics.js";
import { metrics } from "../observability/metrics.js";
import { listenForMetrics, withMetricsEndpoint } from "../observability/metrics-endpoint.js";
import { telemetryInterceptor } from "../observability/rpc-telemetry.js";
import { createTracing, type Tracing } from "../observability/tracing.js";
import { type BootstrapResult, bootstrapTenant } from "../tenancy/bootstrap.js";
import { refusingSystemKeys, systemKeyAuthenticator } from "../tenancy/system-auth.js";
import { tenantGateInterceptor } from "../tenancy/tenant-gate.js";
import { type RunningWorkers, startWorkers } from "../workers/worker.js";
import { type AppContext, backgroundWorkers, createAppContext } from "./context.js";
import { peerAddressKey, peerContextValues } from "./peer.js";
import { readinessChecks } from "./readiness.js";
import { accessPolicy, agentGatewayImpl, registerRoutes, WIRE_UNARY_METHODS } from "./routes.js";
import { HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";

/** A running gateway. */
export interface Gateway {
  url: string;
  address: { host: string; port: number };
  context: AppContext;
  bootstrap: BootstrapResult;
  /** SHA-256 of the internal CA's root (what agents pass as `--ca-pin`); undefined without a CA. */
  caPin: string | undefined;
  /** Connections the guard refused or closed (timeouts, caps) since start. */
  connections: ConnectionGuardStats;
  /** The scrape URL when `/metrics` has a listener of its own (AGW_METRICS_LISTEN). */
  metricsUrl: string | undefined;
  /** Exports the spans ended so far (no-op when tracing is off). */
  flushTraces(): Promise<void>;
  /** Graceful stop: refuse new calls, let open ones finish within the grace period, close the database. */
  stop(): Promise<void>;
}

/**
 * Opens the database, migrates it, creates the default tenant on first start and serves every
 * service on one port. The order matters: nothing listens before the schema is current.
 */
export async function startGateway(config: Config, logger: Logger): Promise<Gateway> {
  // Read from the descriptors before anything else: a served RPC that declares no access stops
  // the start-up here instead of being callable by anyone.
  const access = accessPolicy();
  // Off unless an OTLP endpoint is configured: then neither the calls nor the queries are wrapped.
  const tracing = await createTracing({ ...config.tracing, instanceId: config.replicaId });
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.dbPoolSize, logger, tracer: tracing?.tracer }).catch(async (err) => {
    await tracing?.shutdown();
    throw err;
  });
  let app: AppContext | undefined;
  let workers: RunningWorkers | undefined;
  let metricsListener: Awaited<ReturnType<typeof listenForMetrics>> | undefined;
  try {
    // Under an advisory lock: replicas starting at once migrate one after another (db/migrate.ts).
    const { applied } = await migrateDatabase(database, logger);
    if (applied.length > 0) logger.info({ migrations: applied }, "database migrated");
    // Replicas share PostgreSQL, so they share its LISTEN/NOTIFY; the embedded database has one
    // process by construction. A bus reconnect resynchronises the hub from the tables.
    const bus: Bus = database.url
      ? new PgBus(database.url, logger, () => {
          metrics.busReconnects.add(1);
          resync();
        })
      : new MemoryBus();
    const ca = config.ca ? await openCa(database, config.ca, logger) : undefined;
    const context = createAppContext(config, logger, database, bus, { ...(ca ? { ca } : {}) });
    app = context;
    const resync = () => {
      context.denyList.reload().catch((err) => logger.warn({ err }, "reloading the certificate deny list failed"));
      context.sessions.clear();
      context.control.resync();
      context.agentWatch.resync();
      void context.tenantGate.refresh();
    };
    const bootstrap = await bootstrapTenant(database.db, context.apiKeys, {
      tenantName: config.defaultTenant,
      bootstrapAdminKey: config.bootstrapAdminKey,
      bootstrapSystemKey: config.bootstrapSystemKey,
    });
    const authFailures: AuthFailureLimit = { buckets: context.rateLimits.adminAuthFailuresPerSource, sourceOf: (call) => call.contextValues.get(peerAddressKey) };
    const agents = [certificateBoundSessions(sessionAuthenticator(context.sessions), config.agentAuth)];
    const identity = identityInterceptor(access, {
      // The system key is not an operator of any tenant, and an operator key is not a system key.
      operators: [apiKeyAuthenticator(refusingSystemKeys(database.db, context.apiKeys), authFailures)],
      agents,
      system: [systemKeyAuthenticator(database.db, context.apiKeys, authFailures)],
    });
    const streamCaps = new StreamCaps(config.maxStreamsPerCredential);
    const gatewayImpl = agentGatewayImpl(context);
    const connectHandler = connectNodeAdapter({
      routes: (router) => {
        registerRoutes(router, context, gatewayImpl);
        access.assertCovers(router.handlers.map((h) => h.method));
      },
      // Order: telemetry is outermost (request id and log context for everything inside, the
      // status the client really gets); then errors are mapped; identity is resolved before validation so an
      // unauthenticated caller learns nothing about the request shape; values no column can hold
      // are refused before the protovalidate rules, in every field of every message.
      // A suspended tenant's callers are refused right after they are identified.
      interceptors: [
        telemetryInterceptor(tracing?.tracer, logger),
        errorInterceptor(logger),
        identity,
        tenantGateInterceptor(context.tenantGate),
        streamCapInterceptor(streamCaps),
        storableInputInterceptor(),
        createValidateInterceptor({ validator: requestValidator() }),
      ],
      readMaxBytes: config.maxMessageBytes,
      contextValues: peerContextValues,
    });
    // The agents' hot calls are served beneath connect-node (wire-paths.ts says which); with
    // tracing on, every call goes through the interceptors for its span.
    const wire = { app: context, access, agents, maxMessageBytes: config.maxMessageBytes, rules: requestRules() };
    const rpcAndControl = tracing
      ? connectHandler
      : withWirePaths(
          {
            controlStream: new WireControlStream({ ...wire, caps: streamCaps }),
            unary: new WireUnary(wire, wireUnaryMethods(AgentGatewayService, gatewayImpl, WIRE_UNARY_METHODS)),
          },
          connectHandler,
        );
    // HTTP /healthz and /readyz for probes and load balancers, beside grpc.health.v1.
    const withHealth = withHealthEndpoints(rpcAndControl, {
      draining: () => context.health.isShutDown,
      checks: readinessChecks(database.db, bus),
      onChange: (ready, failures, errors) => (ready ? logger.info("ready") : logger.warn({ failures, err: errors[0] }, "not ready")),
    });
    // Prometheus scrapes /metrics on this port unless it was given a listener of its own (or none).
    const handler = config.metrics.kind === "gateway" ? withMetricsEndpoint(withHealth) : withHealth;
    // Everything a call may rely on runs before the first call can arrive.
    workers = await startWorkers(backgroundWorkers(context), logger);
    const serving = ca && config.tlsFromCa.length > 0 ? await ca.issueServerCertificate(config.tlsFromCa, SERVING_CERT_TTL_MS) : undefined;
    const tls = listenerTls(config, context, serving);
    // The web admin's files at /admin/ and, when configured, CORS for a console elsewhere, in
    // front of Connect on the same port.
    const served = adminConsole(corsForAdmin(handler, config.corsOrigins));
    const listener: Listener = await listen({ host: config.listen.host, port: config.listen.port, handler: served, limits: config.connections, ...(tls ? { tls } : {}) });
    if (config.metrics.kind === "separate") metricsListener = await listenForMetrics(config.metrics.host, config.metrics.port);
    const unobserve = observeGateway({
      db: database.db,
      pool: database.pool,
      openStreams: () => context.control.size,
      heartbeats: context.heartbeats.stats,
      acks: context.control.ackStats,
      connections: listener.guard.stats,
      staleAfterMs: config.staleAfterMs,
    });
    context.health.set("", ServingStatus.SERVING);
    const renewal = serving && ca ? renewServingCertificate(ca, listener, config.tlsFromCa, serving.notAfter, logger) : undefined;
    logger.info(
      {
        url: listener.url,
        replica: config.replicaId,
        database: database.kind,
        workers: workers.names,
        agentAuth: config.agentAuth,
        ...(ca ? { caPin: ca.pin } : {}),
        metrics: metricsListener?.url ?? config.metrics.kind,
        tracing: tracing !== undefined,
      },
      "gateway listening",
    );
    const observability = { tracing, metricsListener, unobserve };
    return running(context, listener, workers, bootstrap, observability, () => clearTimeout(renewal?.timer));
  } catch (err) {
    // A failed start-up leaves nothing behind: the started workers stop, the database closes.
    await metricsListener?.close();
    await workers?.stop();
    await app?.control.close().catch(() => {});
    app?.sessions.close();
    await database.close().catch(() => {});
    await tracing?.shutdown();
    throw err;
  }
}

interface Observability {
  tracing: Tracing | undefined;
  metricsListener: { url: string; close(): Promise<void> } | undefined;
  unobserve: () => void;
}

function running(app: AppContext, listener: Listener, workers: RunningWorkers, bootstrap: BootstrapResult, observability: Observability, stopTimers: () => void): Gateway {
  const { config, logger } = app;
  let stopping: Promise<void> | undefined;
  return {
    url: listener.url,
    address: listener.address,
    context: app,
    bootstrap,
    caPin: app.ca?.pin,
    connections: listener.guard.stats,
    metricsUrl: observability.metricsListener?.url,
    flushTraces: async () => observability.tracing?.flush(),
    stop: () => {
      stopping ??= (async () => {
        stopTimers();
        app.health.shutdown();
        // Streams first: agents get a jittered reconnect hint instead of a cut connection.
        app.control.drain();
        // Live console views end now too; their clients reconnect (to another replica).
        app.agentWatch.drain();
        await listener.close(config.shutdownGraceMs);
        // No more calls can arrive: flush acks, then stop the workers in reverse (the verifier and
        // the sweepers end their runs, the heartbeat flusher writes the last heartbeats, the bus
        // closes) before the database closes.
        await app.control.close();
        app.sessions.close();
        await workers.stop();
        await app.database.close();
        observability.unobserve();
        await observability.metricsListener?.close();
        logger.info("gateway stopped");
        // Last, so the spans of the final calls are exported too.
        await observability.tracing?.shutdown().catch((err) => logger.warn({ err }, "exporting the last spans failed"));
      })();
      return stopping;
    },
  };
}
