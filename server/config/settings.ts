/**
 * The gateway's settings table and the error a bad value raises. Kept apart from the parsing in
 * config.ts so the table — the single source the README, the Helm values schema and
 * docs/operations.md are generated from — reads as one list.
 */

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
  setting("sessionCache", "AGW_SESSION_CACHE", "60s", "How long a replica keeps a resolved session token in memory. Revocations and new handshakes drop it at once on every replica (bus), and a lost bus connection drops all of it, so this bounds only a notification lost while the bus stayed up. Agents heartbeat every AGW_HEARTBEAT_INTERVAL: a cache shorter than that makes every heartbeat a session lookup in PostgreSQL."),
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

export type SettingKey = (typeof SETTINGS)[number]["key"];

/** Thrown for a setting that does not parse; the message names the variable and the flag. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** `AGW_X (--x)`: how an error message names a setting. */
export function describe(key: SettingKey): string {
  const s = SETTINGS.find((x) => x.key === key);
  return s ? `${s.env} (--${s.flag})` : key;
}

function setting<K extends string>(key: K, env: string, defaultValue: string, doc: string) {
  const flag = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  return { key, env, flag, defaultValue, doc };
}
