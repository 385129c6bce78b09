import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { parseDurationMs } from "../../client/values.js";
import type { ConnectionLimits } from "../http/connection-guard.js";
import { ConfigError, describe, SETTINGS, type SettingKey } from "./settings.js";

export { ConfigError, SETTINGS } from "./settings.js";


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
  sessionCacheMs: number;
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

type RawSettings = Record<SettingKey, string>;

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
    sessionCacheMs: durationMs("sessionCache", raw.sessionCache),
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
