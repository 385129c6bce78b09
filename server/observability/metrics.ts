import type { Attributes, BatchObservableCallback, Observable } from "@opentelemetry/api";
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { MeterProvider } from "@opentelemetry/sdk-metrics";

/**
 * The gateway's metrics, through the OpenTelemetry metrics SDK, read by Prometheus at `/metrics`.
 *
 * One meter provider per process, like a Prometheus client's default registry: code anywhere
 * records with a plain `add()`, without a handle threaded through every constructor. A
 * production process runs one gateway; several gateways in one test process share the
 * counters (tests compare before/after). Names follow the OpenTelemetry semantic conventions
 * where one exists (`rpc.server.call.duration`, `db.client.connection.*`); the rest live under
 * `agw.`. Every attribute has a small fixed set of values — never a tenant, agent or key id —
 * so the series count does not grow with the fleet (docs/operations.md, "Metrics").
 */
const exporter = new PrometheusExporter({ preventServerStart: true });
const provider = new MeterProvider({
  resource: resourceFromAttributes({ "service.name": "agentgateway" }),
  readers: [exporter],
});
const meter = provider.getMeter("agentgateway");
// Without the scope label: one meter, so it would only repeat "agentgateway" on every series.
const serializer = new PrometheusSerializer(undefined, false, undefined, false, true);

/** Bucket bounds (seconds) for call and query durations: 1 ms … 10 s. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Instruments recorded where things happen. */
export const metrics = {
  /** Every RPC, by method and status (server streams: until the stream ends). */
  rpcDuration: meter.createHistogram("rpc.server.call.duration", {
    unit: "s",
    description: "Duration of RPCs handled by the gateway (for streams: how long the stream was open)",
    advice: { explicitBucketBoundaries: DURATION_BUCKETS },
  }),
  handshakes: meter.createCounter("agw.handshakes", { description: "Completed agent handshakes by outcome (success, failure) and reason" }),
  registrations: meter.createCounter("agw.registrations", { description: "Register calls by outcome (success, failure) and reason" }),
  revocations: meter.createCounter("agw.revocations", { description: "Revocations by object (agent, api_key, enrollment_token, release_key)" }),
  commandsQueued: meter.createCounter("agw.commands.queued", { description: "Commands queued for agents, by kind" }),
  commandsDelivered: meter.createCounter("agw.commands.delivered", { description: "Commands written to ControlStreams by this replica" }),
  commandsAcked: meter.createCounter("agw.commands.acked", { description: "Command acknowledgements received on ControlStreams, by status" }),
  uploadItems: meter.createCounter("agw.upload.items", {
    description: "Uploaded telemetry points and events by kind (telemetry, events) and result (accepted, duplicate)",
  }),
  rateLimitRefusals: meter.createCounter("agw.ratelimit.refusals", { description: "Calls and connections refused by a rate limit or cap, by limit" }),
  busReconnects: meter.createCounter("agw.bus.reconnects", { description: "Times the cross-replica bus (PostgreSQL LISTEN) reconnected" }),
};

/** Observable instruments read at scrape time from state the gateway keeps anyway. */
export const observables = {
  controlStreams: meter.createObservableUpDownCounter("agw.control.streams", { description: "Open ControlStreams on this replica" }),
  oldestUnackedAge: meter.createObservableGauge("agw.commands.oldest_unacked.age", {
    unit: "s",
    description: "Age of the oldest command not yet acknowledged (whole database)",
  }),
  rollouts: meter.createObservableGauge("agw.rollouts", { description: "Rollouts by state (whole database)" }),
  rolloutMembers: meter.createObservableGauge("agw.rollout.members", { description: "Members of rollouts not yet finished, by state (whole database)" }),
  heartbeatsWritten: meter.createObservableCounter("agw.heartbeats.written", { description: "Heartbeats written to the database by the batch writer" }),
  heartbeatFlushes: meter.createObservableCounter("agw.heartbeat.flushes", { description: "Heartbeat batch flushes by outcome (ok, failed)" }),
  droppedRows: meter.createObservableCounter("agw.batch.dropped", {
    description: "Rows the batch writers dropped, by writer (heartbeats, acks) and reason (rejected by the database, shed because the buffer was full)",
  }),
  connectionsClosed: meter.createObservableCounter("agw.connections.closed", {
    description: "Connections the gateway closed, by reason (first_request_timeout, idle, slow_body)",
  }),
  connectionRefusals: meter.createObservableCounter("agw.connections.refused", {
    description: "Connections refused at accept, by limit (connections, connections_per_source)",
  }),
  poolConnections: meter.createObservableUpDownCounter("db.client.connection.count", {
    description: "PostgreSQL connections of this replica's pool by state (idle, used)",
  }),
  poolPending: meter.createObservableUpDownCounter("db.client.connection.pending_requests", {
    description: "Queries waiting for a PostgreSQL connection from the pool",
  }),
  poolMax: meter.createObservableUpDownCounter("db.client.connection.max", { description: "Size of this replica's PostgreSQL pool" }),
};

/**
 * Registers a batch callback reading `instruments` at each scrape; returns its removal (a
 * stopped gateway must not keep reporting, nor keep its objects alive).
 */
export function observe(instruments: Observable[], callback: BatchObservableCallback): () => void {
  meter.addBatchObservableCallback(callback, instruments);
  return () => meter.removeBatchObservableCallback(callback, instruments);
}

/** The current metrics in the Prometheus text format (0.0.4). */
export async function renderMetrics(): Promise<string> {
  const { resourceMetrics } = await exporter.collect();
  return serializer.serialize(resourceMetrics);
}

/** Attributes of one status of a bounded outcome counter. */
export function outcome(ok: boolean, reason: string): Attributes {
  return { outcome: ok ? "success" : "failure", reason };
}

/** Every limit that can refuse a call (RateLimitedError.limit values), reported from zero. */
export const RATE_LIMITS = [
  "register_per_source",
  "handshake_per_agent",
  "handshake_per_source",
  "admin_auth_failures_per_source",
  "upload_items_per_agent",
  "upload_bytes_per_agent",
  "streams_per_credential",
  "heartbeat_buffer",
];

// Counters start at zero rather than appearing on their first event, so rate() and increase()
// see the first one, and an alert on them can tell "none happened" from "not reported".
for (const limit of RATE_LIMITS) metrics.rateLimitRefusals.add(0, { limit });
for (const object of ["agent", "api_key", "enrollment_token", "release_key"]) metrics.revocations.add(0, { object });
metrics.handshakes.add(0, { outcome: "success", reason: "" });
metrics.registrations.add(0, { outcome: "success", reason: "" });
for (const status of ["OK", "FAILED", "UNSUPPORTED"]) metrics.commandsAcked.add(0, { status });
for (const kind of ["peer_revoked", "rollout"]) metrics.commandsQueued.add(0, { kind });
metrics.busReconnects.add(0);
metrics.commandsDelivered.add(0);
