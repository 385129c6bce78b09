import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { parseDurationMs } from "../../client/values.js";
import type { ConnectionLimits } from "../http/connection-guard.js";

/**
 * Every setting of the gateway, read from the environment and overridable by flags. This table
 * is the single source of truth: the README's configuration table is printed from it
 * (`agentgateway config-table`) and a test checks the README lists every variable.
 */
export const SETTINGS = [
  setting("listen", "AGW_LISTEN", "127.0.0.1:7070", "host:port to listen on (gRPC, gRPC-Web and Connect on one port). Use port 0 for a random free port."),
  setting("databaseUrl", "DATABASE_URL", "", "External PostgreSQL, e.g. `postgres://user:pass@host/db`. When empty, an embedded PostgreSQL (PGlite) in `AGW_DATA_DIR` is used."),
  setting("dataDir", "AGW_DATA_DIR", ".agw-data", "Directory of the embedded database (ignored when `DATABASE_URL` is set)."),
  setting("bootstrapAdminKey", "AGW_BOOTSTRAP_ADMIN_KEY", "", "On first start only: use this string (32+ characters) as the default tenant's admin API key instead of a generated one. Never logged."),
  setting("bootstrapSystemKey", "AGW_BOOTSTRAP_SYSTEM_KEY", "", "On first start (or the first start after upgrading to tenancy) only: use this string (32+ characters) as the provider's system key for TenantService instead of a generated one. Never logged."),
  setting("defaultTenant", "AGW_DEFAULT_TENANT", "default", "Name of the tenant created on first start."),
  setting("tlsCert", "AGW_TLS_CERT", "", "PEM certificate file. When set (with `AGW_TLS_KEY`) the port serves TLS with ALPN (h2 and http/1.1); otherwise cleartext h2c and HTTP/1.1."),
  setting("tlsKey", "AGW_TLS_KEY", "", "PEM private key file for `AGW_TLS_CERT`."),
  setting("logLevel", "AGW_LOG_LEVEL", "info", "pino level: trace, debug, info, warn, error, fatal, silent."),
  setting("replicaId", "AGW_REPLICA_ID", "", "Name of this gateway process in logs and stream welcomes (default: hostname-pid)."),
  setting("sessionTtl", "AGW_SESSION_TTL", "1h", "Lifetime of an agent session token."),
  setting("challengeTtl", "AGW_CHALLENGE_TTL", "30s", "Lifetime of a handshake challenge."),
  setting("enrollmentTokenTtl", "AGW_ENROLLMENT_TOKEN_TTL", "1h", "Default lifetime of an enrollment token when the request names none."),
  setting("heartbeatInterval", "AGW_HEARTBEAT_INTERVAL", "30s", "How often agents are asked to send heartbeats."),
  setting("staleAfter", "AGW_STALE_AFTER", "90s", "An agent with no heartbeat for this long is STALE."),
  setting("offlineAfter", "AGW_OFFLINE_AFTER", "5m", "An agent with no heartbeat for this long is OFFLINE."),
  setting("heartbeatFlushInterval", "AGW_HEARTBEAT_FLUSH_INTERVAL", "1s", "How often heartbeats collected in memory are written to the database (one statement per flush)."),
  setting("livenessSweepInterval", "AGW_LIVENESS_SWEEP_INTERVAL", "10s", "How often ONLINE/STALE/OFFLINE transitions are detected and written to the audit log (one replica at a time)."),
  setting("rolloutVerifyInterval", "AGW_ROLLOUT_VERIFY_INTERVAL", "1s", "How often running rollouts are verified against heartbeats (waves completed, halted or advanced; one replica at a time)."),
  setting("shutdownGrace", "AGW_SHUTDOWN_GRACE", "10s", "On SIGTERM, how long open calls and streams may take to finish before they are cut."),
  setting("streamMaxAge", "AGW_STREAM_MAX_AGE", "30m", "A ControlStream is closed with GoAway MAX_AGE after about this long (±10 % jitter), so agents rebalance across replicas."),
  setting("streamPingInterval", "AGW_STREAM_PING_INTERVAL", "30s", "How often the gateway pings an idle ControlStream; a stream that does not answer within the next interval is closed."),
  setting("drainSpread", "AGW_DRAIN_SPREAD", "30s", "When a replica drains (shutdown), agents are told to reconnect after a random delay up to this long, so they spread over the other replicas."),
  setting("maxMessageBytes", "AGW_MAX_MESSAGE_BYTES", "4194304", "Largest request message accepted, in bytes (an event payload may be 1 MiB)."),
  setting("workers", "AGW_WORKERS", "1", "Gateway processes sharing the listening port (node:cluster; connections are handed to them in turn). Each is a replica with its own `AGW_DB_POOL_SIZE` connections. Needs `DATABASE_URL` when above 1."),
  setting("dbPoolSize", "AGW_DB_POOL_SIZE", "20", "PostgreSQL connections per gateway process."),
  setting("firstRequestTimeout", "AGW_FIRST_REQUEST_TIMEOUT", "10s", "A connection must complete its TLS handshake and first request head (HTTP/1.1) or open its first stream (HTTP/2) within this long; also the longest an HTTP/1.1 request body may take."),
  setting("idleTimeout", "AGW_IDLE_TIMEOUT", "2m", "A connection with no request in flight (HTTP/1.1) or no open stream (HTTP/2) is closed after this long. Open ControlStreams keep their connection."),
  setting("maxConnections", "AGW_MAX_CONNECTIONS", "50000", "Open connections per gateway process; further ones are closed at once. 0 = no cap."),
  setting("maxConnectionsPerSource", "AGW_MAX_CONNECTIONS_PER_SOURCE", "2000", "Open connections per client address (agents behind one NAT or load balancer share one: raise it there). 0 = no cap."),
  setting("maxStreamsPerCredential", "AGW_MAX_STREAMS_PER_CREDENTIAL", "16", "Server streams (WatchRollout, WatchAgents, ControlStream) one operator key or agent may hold open at once, per gateway process."),
  setting("maxStreamsPerConnection", "AGW_MAX_STREAMS_PER_CONNECTION", "100", "Concurrent HTTP/2 streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS)."),
  setting("registerRatePerSource", "AGW_REGISTER_RATE", "5/s:20", "Register calls allowed per source address: `rate/s:burst`."),
  setting("handshakeRatePerAgent", "AGW_HANDSHAKE_RATE", "2/s:10", "Handshakes allowed per agent: `rate/s:burst`. Charged only for a BeginAuthHandshake that presented the agent's own key, so knowing an agent id does not let anyone use up its budget."),
  setting("uploadItemRate", "AGW_UPLOAD_ITEM_RATE", "2000/s:10000", "Telemetry points plus events each agent may upload: `rate/s:burst` (items). Past it uploads answer RESOURCE_EXHAUSTED with a retry hint."),
  setting("uploadByteRate", "AGW_UPLOAD_BYTE_RATE", "4194304/s:16777216", "Upload bytes each agent may send: `rate/s:burst` (bytes of encoded requests; 4 MiB/s with a 16 MiB burst by default)."),
  setting("adminAuthFailureRate", "AGW_ADMIN_AUTH_FAILURE_RATE", "1/s:20", "Failed operator API-key authentications allowed per source address: `rate/s:burst`. Past it the source is refused (also with a valid key) until the budget refills."),
  setting("handshakeRatePerSource", "AGW_HANDSHAKE_SOURCE_RATE", "200/s:400", "Handshake calls allowed per source address (many agents may share a NAT): `rate/s:burst`."),
  setting("metricsListen", "AGW_METRICS_LISTEN", "", "Where Prometheus scrapes `/metrics`. Empty: on the gateway's own port. `host:port`: on a separate plain-HTTP listener only (e.g. `127.0.0.1:9464` or a pod-internal address), not on the gateway port. `off`: nowhere. See docs/operations.md, \"Metrics\"."),
  setting("otlpEndpoint", "AGW_OTLP_ENDPOINT", "", "OTLP/HTTP URL traces are exported to, e.g. `http://otel-collector:4318/v1/traces`. Empty: the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`; when none is set, tracing is off and costs nothing."),
  setting("traceSampleRatio", "AGW_TRACE_SAMPLE_RATIO", "1", "Fraction (0–1) of new traces recorded when tracing is on; a caller's `traceparent` sampled flag is always honoured."),
  setting("maxInflightHandshakes", "AGW_MAX_INFLIGHT_HANDSHAKES", "64", "Handshake calls (Begin or Complete) doing database work at once in this process; past it calls are refused at once with RESOURCE_EXHAUSTED and a jittered retry hint (reconnect storms are shed before they queue). 0 = no cap."),
  setting("maxInflightStreamOpens", "AGW_MAX_INFLIGHT_STREAM_OPENS", "64", "ControlStreams being opened (hello to welcome, database work) at once in this process; past it the stream is refused with RESOURCE_EXHAUSTED and a jittered retry hint. 0 = no cap."),
  setting("shedRetrySpread", "AGW_SHED_RETRY_SPREAD", "5s", "Calls refused by the two caps above are told to retry after 1 s plus a random share of this spread."),
  setting("corsOrigins", "AGW_CORS_ORIGINS", "", "Comma-separated origins (e.g. `https://console.example.com`) whose browsers may call the admin API from another site. Empty: no CORS, only the console served at `/admin/` on this port."),
  setting("agentAuth", "AGW_AGENT_AUTH", "session", "How agents authenticate post-handshake RPCs: `session` (the bearer session only), `mtls` (also a client certificate from the internal CA, required after IssueAgentCertificate) or `both` (a certificate is optional, but must match the session when presented). `mtls`/`both` need TLS and `AGW_CA_KEY`."),
  setting("caKey", "AGW_CA_KEY", "", "Secret (32+ bytes, e.g. `openssl rand -base64 32`) that seals the internal CA's private keys in the database (AES-256-GCM). Without it (or `AGW_CA_KEY_FILE`) the gateway runs without a CA. Never logged."),
  setting("caKeyFile", "AGW_CA_KEY_FILE", "", "File holding the `AGW_CA_KEY` secret (e.g. a mounted Kubernetes secret); trailing whitespace is ignored."),
  setting("trustDomain", "AGW_TRUST_DOMAIN", "agentgateway.local", "SPIFFE trust domain of agent certificates: `spiffe://<domain>/tenant/<tenant id>/agent/<agent id>`."),
  setting("agentCertTtl", "AGW_AGENT_CERT_TTL", "24h", "Lifetime of an agent client certificate; agents renew at half of it."),
  setting("caIntermediateTtl", "AGW_CA_INTERMEDIATE_TTL", "365d", "Lifetime of an issuing intermediate created on first start or by `ca rotate`."),
  setting("caRootCert", "AGW_CA_ROOT_CERT", "", "On first start only: PEM file of a root CA certificate to import instead of generating one (with `AGW_CA_ROOT_KEY`)."),
  setting("caRootKey", "AGW_CA_ROOT_KEY", "", "PEM private key file of `AGW_CA_ROOT_CERT`; sealed into the database on import."),
  setting("tlsFromCa", "AGW_TLS_FROM_CA", "", "Comma-separated host names and IP addresses: serve TLS with a certificate from the internal CA for them (instead of `AGW_TLS_CERT`); agents then pin the CA with `--ca-pin` (printed at start)."),
  setting("retentionTelemetry", "AGW_RETENTION_TELEMETRY", "30d", "Telemetry points received longer ago than this are deleted (in batches, by one replica at a time). `0` or `off`: kept for ever. Also the window in which a re-sent point id is recognised as a duplicate."),
  setting("retentionEvents", "AGW_RETENTION_EVENTS", "30d", "Agent events received longer ago than this are deleted. `0` or `off`: kept for ever."),
  setting("retentionCommands", "AGW_RETENTION_COMMANDS", "7d", "Commands acknowledged (or withdrawn) longer ago than this are deleted; unacknowledged ones are kept until acked. `0` or `off`: kept for ever."),
  setting("retentionSessions", "AGW_RETENTION_SESSIONS", "1h", "Agent sessions and handshake challenges that expired longer ago than this are deleted. `0` or `off`: kept for ever."),
  setting("retentionInterval", "AGW_RETENTION_INTERVAL", "5m", "How often the retention sweep runs. Audit records are never deleted."),
  setting("retentionBatchSize", "AGW_RETENTION_BATCH_SIZE", "1000", "Rows one retention DELETE statement removes at most."),
  setting("retentionBatchPause", "AGW_RETENTION_BATCH_PAUSE", "100ms", "Pause between two retention batches, so a long sweep never holds locks or I/O for long. `0`: no pause."),
] as const;

/** The validated configuration the gateway runs with. Tests build it with `loadConfig({...})`. */
export interface Config {
  listen: { host: string; port: number };
  databaseUrl: string | undefined;
  dataDir: string;
  bootstrapAdminKey: string | undefined;
  bootstrapSystemKey: string | undefined;
  defaultTenant: string;
  tls: { cert: string; key: string } | undefined;
  logLevel: string;
  replicaId: string;
  sessionTtlMs: number;
  challengeTtlMs: number;
  enrollmentTokenTtlMs: number;
  heartbeatIntervalMs: number;
  staleAfterMs: number;
  offlineAfterMs: number;
  heartbeatFlushIntervalMs: number;
  livenessSweepIntervalMs: number;
  rolloutVerifyIntervalMs: number;
  shutdownGraceMs: number;
  streamMaxAgeMs: number;
  streamPingIntervalMs: number;
  drainSpreadMs: number;
  maxMessageBytes: number;
  dbPoolSize: number;
  connections: ConnectionLimits;
  maxStreamsPerCredential: number;
  workers: number;
  maxInflightHandshakes: number;
  maxInflightStreamOpens: number;
  shedRetrySpreadMs: number;
  registerRatePerSource: RateSpec;
  handshakeRatePerAgent: RateSpec;
  handshakeRatePerSource: RateSpec;
  adminAuthFailureRate: RateSpec;
  uploadItemRate: RateSpec;
  uploadByteRate: RateSpec;
  /** Exact origins allowed cross-origin calls (lowercase scheme://host[:port]); empty = CORS off. */
  corsOrigins: string[];
  agentAuth: "session" | "mtls" | "both";
  /** The internal CA; undefined when no CA key is configured. */
  ca: CaConfig | undefined;
  /** Names of a serving certificate from the internal CA; empty = AGW_TLS_CERT or cleartext. */
  tlsFromCa: string[];
  /** Where `/metrics` is served: on the gateway port, on a listener of its own, or nowhere. */
  metrics: { kind: "gateway" } | { kind: "separate"; host: string; port: number } | { kind: "off" };
  /** Trace export; `otlpEndpoint` undefined = tracing off. */
  tracing: { otlpEndpoint: string | undefined; sampleRatio: number };
  /** What the retention sweep deletes and how fast (server/workers/retention.ts). */
  retention: RetentionConfig;
}

/** The internal CA's settings. */
export interface CaConfig {
  /** The sealing secret itself, or a file holding it. */
  key: { value: string } | { file: string };
  trustDomain: string;
  agentCertTtlMs: number;
  intermediateTtlMs: number;
  importRoot: { certFile: string; keyFile: string } | undefined;
}

/** Retention ages in ms (0 = keep for ever) and the sweep's pace. */
export interface RetentionConfig {
  telemetryMs: number;
  eventsMs: number;
  commandsMs: number;
  sessionsMs: number;
  intervalMs: number;
  batchSize: number;
  batchPauseMs: number;
}

/** Token-bucket parameters: `perSecond` refill, `burst` capacity. */
export interface RateSpec {
  perSecond: number;
  burst: number;
}

type SettingKey = (typeof SETTINGS)[number]["key"];
type RawSettings = Record<SettingKey, string>;

/** Thrown for a setting that does not parse; the message names the variable and the flag. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * Builds the configuration: defaults, then the environment, then `--flag value` arguments, then
 * `overrides` (for tests). Throws ConfigError naming the setting on any bad value.
 */
export function loadConfig(
  overrides: Partial<RawSettings> = {},
  env: NodeJS.ProcessEnv = process.env,
  argv: string[] = [],
): Config {
  const raw = {} as RawSettings;
  const options: Record<string, { type: "string" }> = {};
  for (const s of SETTINGS) {
    raw[s.key] = env[s.env] ?? s.defaultValue;
    options[s.flag] = { type: "string" };
  }
  const { values } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  for (const s of SETTINGS) {
    const flagValue = values[s.flag];
    if (typeof flagValue === "string") raw[s.key] = flagValue;
    const override = overrides[s.key];
    if (override !== undefined) raw[s.key] = override;
  }
  const tls = raw.tlsCert || raw.tlsKey ? { cert: raw.tlsCert, key: raw.tlsKey } : undefined;
  if (tls && (!tls.cert || !tls.key)) throw new ConfigError("AGW_TLS_CERT and AGW_TLS_KEY must be set together");
  const bootstrapAdminKey = raw.bootstrapAdminKey || undefined;
  if (bootstrapAdminKey !== undefined && bootstrapAdminKey.length < 32) {
    throw new ConfigError("AGW_BOOTSTRAP_ADMIN_KEY must be at least 32 characters");
  }
  const bootstrapSystemKey = raw.bootstrapSystemKey || undefined;
  if (bootstrapSystemKey !== undefined && bootstrapSystemKey.length < 32) {
    throw new ConfigError("AGW_BOOTSTRAP_SYSTEM_KEY must be at least 32 characters");
  }
  if (bootstrapSystemKey !== undefined && bootstrapSystemKey === bootstrapAdminKey) {
    throw new ConfigError("AGW_BOOTSTRAP_SYSTEM_KEY must differ from AGW_BOOTSTRAP_ADMIN_KEY");
  }
  const config: Config = {
    listen: parseListen(raw.listen),
    databaseUrl: raw.databaseUrl || undefined,
    dataDir: raw.dataDir,
    bootstrapAdminKey,
    bootstrapSystemKey,
    defaultTenant: nonEmpty("defaultTenant", raw.defaultTenant),
    tls,
    logLevel: parseLogLevel(raw.logLevel),
    replicaId: raw.replicaId || `${hostname()}-${process.pid}`,
    sessionTtlMs: durationMs("sessionTtl", raw.sessionTtl),
    challengeTtlMs: durationMs("challengeTtl", raw.challengeTtl),
    enrollmentTokenTtlMs: durationMs("enrollmentTokenTtl", raw.enrollmentTokenTtl),
    heartbeatIntervalMs: durationMs("heartbeatInterval", raw.heartbeatInterval),
    staleAfterMs: durationMs("staleAfter", raw.staleAfter),
    offlineAfterMs: durationMs("offlineAfter", raw.offlineAfter),
    heartbeatFlushIntervalMs: durationMs("heartbeatFlushInterval", raw.heartbeatFlushInterval),
    livenessSweepIntervalMs: durationMs("livenessSweepInterval", raw.livenessSweepInterval),
    rolloutVerifyIntervalMs: durationMs("rolloutVerifyInterval", raw.rolloutVerifyInterval),
    shutdownGraceMs: durationMs("shutdownGrace", raw.shutdownGrace),
    streamMaxAgeMs: durationMs("streamMaxAge", raw.streamMaxAge),
    streamPingIntervalMs: durationMs("streamPingInterval", raw.streamPingInterval),
    drainSpreadMs: durationMs("drainSpread", raw.drainSpread),
    maxMessageBytes: positiveInt("maxMessageBytes", raw.maxMessageBytes),
    dbPoolSize: positiveInt("dbPoolSize", raw.dbPoolSize),
    workers: positiveInt("workers", raw.workers),
    connections: {
      firstRequestTimeoutMs: durationMs("firstRequestTimeout", raw.firstRequestTimeout),
      idleTimeoutMs: durationMs("idleTimeout", raw.idleTimeout),
      maxConnections: nonNegativeInt("maxConnections", raw.maxConnections),
      maxConnectionsPerSource: nonNegativeInt("maxConnectionsPerSource", raw.maxConnectionsPerSource),
      maxStreamsPerConnection: positiveInt("maxStreamsPerConnection", raw.maxStreamsPerConnection),
    },
    maxStreamsPerCredential: positiveInt("maxStreamsPerCredential", raw.maxStreamsPerCredential),
    maxInflightHandshakes: nonNegativeInt("maxInflightHandshakes", raw.maxInflightHandshakes),
    maxInflightStreamOpens: nonNegativeInt("maxInflightStreamOpens", raw.maxInflightStreamOpens),
    shedRetrySpreadMs: durationMs("shedRetrySpread", raw.shedRetrySpread),
    registerRatePerSource: rate("registerRatePerSource", raw.registerRatePerSource),
    handshakeRatePerAgent: rate("handshakeRatePerAgent", raw.handshakeRatePerAgent),
    handshakeRatePerSource: rate("handshakeRatePerSource", raw.handshakeRatePerSource),
    adminAuthFailureRate: rate("adminAuthFailureRate", raw.adminAuthFailureRate),
    uploadItemRate: rate("uploadItemRate", raw.uploadItemRate),
    uploadByteRate: rate("uploadByteRate", raw.uploadByteRate),
    corsOrigins: origins("corsOrigins", raw.corsOrigins),
    agentAuth: agentAuth(raw.agentAuth),
    ca: caConfig(raw),
    tlsFromCa: raw.tlsFromCa.split(",").map((n) => n.trim()).filter((n) => n.length > 0),
    metrics: metricsPlace(raw.metricsListen),
    tracing: { otlpEndpoint: otlpEndpoint(raw.otlpEndpoint, env), sampleRatio: ratio("traceSampleRatio", raw.traceSampleRatio) },
    retention: {
      telemetryMs: age("retentionTelemetry", raw.retentionTelemetry),
      eventsMs: age("retentionEvents", raw.retentionEvents),
      commandsMs: age("retentionCommands", raw.retentionCommands),
      sessionsMs: age("retentionSessions", raw.retentionSessions),
      intervalMs: durationMs("retentionInterval", raw.retentionInterval),
      batchSize: positiveInt("retentionBatchSize", raw.retentionBatchSize),
      batchPauseMs: age("retentionBatchPause", raw.retentionBatchPause),
    },
  };
  if (config.agentAuth !== "session") {
    if (!config.ca) throw new ConfigError(`AGW_AGENT_AUTH=${config.agentAuth} needs the CA key: set AGW_CA_KEY or AGW_CA_KEY_FILE`);
    if (!config.tls && config.tlsFromCa.length === 0) throw new ConfigError(`AGW_AGENT_AUTH=${config.agentAuth} needs TLS: set AGW_TLS_FROM_CA or AGW_TLS_CERT and AGW_TLS_KEY`);
  }
  if (config.tlsFromCa.length > 0 && !config.ca) throw new ConfigError("AGW_TLS_FROM_CA needs the CA key: set AGW_CA_KEY or AGW_CA_KEY_FILE");
  if (config.tlsFromCa.length > 0 && config.tls) throw new ConfigError("set either AGW_TLS_FROM_CA or AGW_TLS_CERT/AGW_TLS_KEY, not both");
  if (config.workers > 1 && !config.databaseUrl) {
    throw new ConfigError("AGW_WORKERS above 1 needs DATABASE_URL: the embedded database and its in-memory bus serve one process");
  }
  if (config.offlineAfterMs <= config.staleAfterMs) {
    throw new ConfigError("AGW_OFFLINE_AFTER must be longer than AGW_STALE_AFTER");
  }
  return config;
}

/** The README's configuration table, printed from SETTINGS. */
export function configTableMarkdown(): string {
  const rows = SETTINGS.map((s) => `| \`${s.env}\` | \`--${s.flag}\` | ${s.defaultValue ? `\`${s.defaultValue}\`` : "(empty)"} | ${s.doc} |`);
  return ["| Variable | Flag | Default | Meaning |", "| --- | --- | --- | --- |", ...rows].join("\n");
}

function setting<K extends string>(key: K, env: string, defaultValue: string, doc: string) {
  const flag = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  return { key, env, flag, defaultValue, doc };
}

function describe(key: SettingKey): string {
  const s = SETTINGS.find((x) => x.key === key);
  return s ? `${s.env} (--${s.flag})` : key;
}

function agentAuth(value: string): Config["agentAuth"] {
  if (value === "session" || value === "mtls" || value === "both") return value;
  throw new ConfigError(`${describe("agentAuth")} must be session, mtls or both, got "${value}"`);
}

function caConfig(raw: RawSettings): CaConfig | undefined {
  if (raw.caKey && raw.caKeyFile) throw new ConfigError("set AGW_CA_KEY or AGW_CA_KEY_FILE, not both");
  if (raw.caKey && Buffer.byteLength(raw.caKey.trim()) < 32) throw new ConfigError("AGW_CA_KEY must be at least 32 bytes (e.g. openssl rand -base64 32)");
  if (Boolean(raw.caRootCert) !== Boolean(raw.caRootKey)) throw new ConfigError("AGW_CA_ROOT_CERT and AGW_CA_ROOT_KEY must be set together");
  if (!raw.caKey && !raw.caKeyFile) {
    if (raw.caRootCert) throw new ConfigError("AGW_CA_ROOT_CERT needs AGW_CA_KEY or AGW_CA_KEY_FILE to seal the imported key");
    return undefined;
  }
  if (!/^[a-z0-9._-]{1,255}$/.test(raw.trustDomain)) throw new ConfigError(`${describe("trustDomain")} must be a SPIFFE trust domain (lowercase letters, digits, . - _)`);
  const agentCertTtlMs = durationMs("agentCertTtl", raw.agentCertTtl);
  if (agentCertTtlMs < 10_000) throw new ConfigError(`${describe("agentCertTtl")} must be at least 10s`);
  return {
    key: raw.caKey ? { value: raw.caKey } : { file: raw.caKeyFile },
    trustDomain: raw.trustDomain,
    agentCertTtlMs,
    intermediateTtlMs: durationMs("caIntermediateTtl", raw.caIntermediateTtl),
    importRoot: raw.caRootCert ? { certFile: raw.caRootCert, keyFile: raw.caRootKey } : undefined,
  };
}

function parseListen(value: string): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(value);
  const port = match ? Number(match[2]) : Number.NaN;
  if (!match?.[1] || !(port >= 0 && port <= 65535)) {
    throw new ConfigError(`${describe("listen")} must be host:port, got "${value}"`);
  }
  return { host: match[1].replace(/^\[|\]$/g, ""), port };
}

const LOG_LEVELS = new Set(["trace", "debug", "info", "warn", "error", "fatal", "silent"]);

function parseLogLevel(value: string): string {
  if (!LOG_LEVELS.has(value)) throw new ConfigError(`${describe("logLevel")} must be one of ${[...LOG_LEVELS].join(", ")}`);
  return value;
}

function nonEmpty(key: SettingKey, value: string): string {
  if (!value.trim()) throw new ConfigError(`${describe(key)} must not be empty`);
  return value.trim();
}

function durationMs(key: SettingKey, value: string): number {
  const ms = parseDurationMs(value);
  if (ms === undefined || ms <= 0) throw new ConfigError(`${describe(key)} must be a duration like 30s, 5m or 1h, got "${value}"`);
  return ms;
}

/** `0` or `off`: the feature is disabled. */
function isOff(value: string): boolean {
  const v = value.trim().toLowerCase();
  return v === "0" || v === "off";
}

/** A retention age: a duration, or `0`/`off` for "keep for ever" (0). */
function age(key: SettingKey, value: string): number {
  return isOff(value) ? 0 : durationMs(key, value);
}

function positiveInt(key: SettingKey, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new ConfigError(`${describe(key)} must be a positive integer, got "${value}"`);
  return n;
}

function nonNegativeInt(key: SettingKey, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new ConfigError(`${describe(key)} must be a whole number (0 = no cap), got "${value}"`);
  return n;
}

function rate(key: SettingKey, value: string): RateSpec {
  const match = /^(\d+(?:\.\d+)?)\/s:(\d+)$/.exec(value.trim());
  const perSecond = Number(match?.[1]);
  const burst = Number(match?.[2]);
  if (!match || !(perSecond > 0) || !(burst >= 1)) {
    throw new ConfigError(`${describe(key)} must look like 5/s:20 (rate per second : burst), got "${value}"`);
  }
  return { perSecond, burst };
}

function metricsPlace(value: string): Config["metrics"] {
  const v = value.trim();
  if (v === "") return { kind: "gateway" };
  if (v === "off") return { kind: "off" };
  try {
    return { kind: "separate", ...parseListen(v) };
  } catch {
    throw new ConfigError(`${describe("metricsListen")} must be empty, off, or host:port, got "${value}"`);
  }
}

/** AGW_OTLP_ENDPOINT, else the standard OpenTelemetry variables (signal-specific first). */
function otlpEndpoint(value: string, env: NodeJS.ProcessEnv): string | undefined {
  if (env.OTEL_SDK_DISABLED === "true" || env.OTEL_TRACES_EXPORTER === "none") return undefined;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  const url = value.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() || (base ? `${base.replace(/\/+$/, "")}/v1/traces` : "");
  if (!url) return undefined;
  if (!/^https?:\/\/[^/\s]+/i.test(url)) throw new ConfigError(`${describe("otlpEndpoint")} (or OTEL_EXPORTER_OTLP_ENDPOINT) must be an http(s) URL, got "${url}"`);
  return url;
}

function ratio(key: SettingKey, value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !(n >= 0 && n <= 1)) throw new ConfigError(`${describe(key)} must be a number from 0 to 1, got "${value}"`);
  return n;
}

function origins(key: SettingKey, value: string): string[] {
  const list = value.split(",").map((o) => o.trim()).filter((o) => o !== "");
  for (const origin of list) {
    // An origin is exactly scheme://host[:port]: no path, no wildcard, so nothing matches by accident.
    if (!/^https?:\/\/[a-z0-9.-]+(:\d{1,5})?$/i.test(origin) && !/^https?:\/\/\[[0-9a-f:]+\](:\d{1,5})?$/i.test(origin)) {
      throw new ConfigError(`${describe(key)} must list origins like https://console.example.com (no path, no *), got "${origin}"`);
    }
  }
  return list.map((o) => o.toLowerCase());
}
