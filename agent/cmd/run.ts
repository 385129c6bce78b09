import { parseArgs } from "node:util";
import { EXIT, ExitError } from "../lib/errors.js";
import { LocalEventSource } from "../lib/event-source.js";
import { parseBytes, parseDuration, parseLabels, usageError } from "../lib/flags.js";
import { HostCollector, hostFacts } from "../lib/host.js";
import { parseReleaseKeys } from "../lib/manifest.js";
import { Outbox } from "../lib/outbox.js";
import { FILES, type RuntimeStatus } from "../lib/state.js";
import { Supervisor, type SupervisorEvent } from "../lib/supervisor.js";
import { createGatewayTransport, TrustError } from "../../client/transport.js";
import { gatewayClient } from "../lib/direct.js";
import { CertificateKeeper } from "../lib/cert-keeper.js";
import { AGENT_VERSION, readVersionFile } from "../lib/version.js";
import { COMMON_FLAGS, loggerOf, openEnrolled, protocolOf, stateDirOf, TRUST_FLAGS, trustOf } from "./common.js";

export const RUN_USAGE = `agw-agent run [--state-dir DIR] [flags]
  Connects, keeps the ControlStream open, sends heartbeats, uploads host telemetry and local
  events through the on-disk outbox, applies commands, and reconnects with jittered backoff.
  --telemetry-interval DUR   host metrics every DUR (default 30s; 0 turns the collector off)
  --outbox-max-bytes SIZE    bound of the on-disk outbox (default 64MiB; oldest dropped first)
  --backoff-initial DUR      first reconnect (and upload retry) window (default 1s)
  --backoff-max DUR          largest reconnect (and upload retry) window (default 30s)
  --healthy-after DUR        a connection up this long resets the backoff (default 30s)
  --release-key HEX          pinned release public key (repeatable; adds to enrollment's)
  --update-command CMD       rollout hook, run with /bin/sh -c (manifest JSON on stdin)
  --update-timeout DUR       kill the hook after DUR (default 10m)
  --version-file FILE        the running version (re-read after a rollout and per heartbeat)
  --agent-version V          report V instead of the built-in version
  --labels k=v,…             labels reported in heartbeats (default: enrollment's)
  --event-socket PATH|off    local event socket (default STATE_DIR/events.sock)
  --spool-dir DIR|off        local event spool directory (default STATE_DIR/spool)
  --mtls auto|off            auto (default, https only): get a client certificate after the
                             handshake, present it, renew it at half-life; off: session only
  --server, --ca-file, --ca-pin, --system-ca override what enrollment stored.`;

/** `agw-agent run`: returns the exit code. */
export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...COMMON_FLAGS,
      ...TRUST_FLAGS,
      "telemetry-interval": { type: "string" },
      "outbox-max-bytes": { type: "string" },
      "backoff-initial": { type: "string" },
      "backoff-max": { type: "string" },
      "healthy-after": { type: "string" },
      "release-key": { type: "string", multiple: true },
      "update-command": { type: "string" },
      "update-timeout": { type: "string" },
      "version-file": { type: "string" },
      "agent-version": { type: "string" },
      labels: { type: "string" },
      "event-socket": { type: "string" },
      "spool-dir": { type: "string" },
      mtls: { type: "string" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(RUN_USAGE);
    return EXIT.OK;
  }
  const dir = stateDirOf(values["state-dir"]);
  // A revoked state refuses here, before any network call.
  const { store, state } = await openEnrolled(dir);
  const logger = loggerOf(values["log-level"]);
  const identity = await store.loadIdentity();
  if (!identity) throw new ExitError(EXIT.IDENTITY_UNUSABLE, `${dir}/${FILES.identity} is missing`);
  const telemetryMs = parseDuration("telemetry-interval", values["telemetry-interval"] ?? "30s", true);
  const backoffInitial = parseDuration("backoff-initial", values["backoff-initial"] ?? "1s");
  const backoffMax = parseDuration("backoff-max", values["backoff-max"] ?? "30s");
  if (backoffMax < backoffInitial) throw usageError("--backoff-max must not be shorter than --backoff-initial");
  const healthyAfterMs = parseDuration("healthy-after", values["healthy-after"] ?? "30s");
  const updateTimeoutMs = parseDuration("update-timeout", values["update-timeout"] ?? "10m");
  const outboxMax = parseBytes("outbox-max-bytes", values["outbox-max-bytes"] ?? "64MiB");
  if (outboxMax < 64 * 1024) throw usageError("--outbox-max-bytes must be at least 64KiB");
  let releaseKeys: Uint8Array[];
  try {
    releaseKeys = parseReleaseKeys([...state.releaseKeys, ...(values["release-key"] ?? [])]);
  } catch (err) {
    throw usageError((err as Error).message);
  }
  const labels = values.labels !== undefined ? parseLabels(values.labels) : state.labels;
  const builtIn = values["agent-version"] ?? AGENT_VERSION;
  const versionFile = values["version-file"];
  const version = (): string => {
    const fromFile = versionFile ? readVersionFile(versionFile) : undefined;
    if (fromFile) return fromFile;
    return state.installedVersion?.replaced === builtIn ? state.installedVersion.version : builtIn;
  };
  const trust = trustOf(values, state);
  const mtls = values.mtls ?? "auto";
  if (mtls !== "auto" && mtls !== "off") throw usageError("--mtls must be auto or off");
  const server = values.server ?? state.server;
  let certificates: CertificateKeeper | undefined;
  let transport: ReturnType<typeof createGatewayTransport>;
  try {
    transport = createGatewayTransport(server, trust, {
      protocol: protocolOf(values.protocol),
      clientCertificate: () => certificates?.current(),
      onClientCertificateRefused: (error) => certificates?.refused(error.message),
      interceptors: [(next) => (req) => (certificates ? certificates.interceptor()(next)(req) : next(req))],
    });
  } catch (err) {
    if (err instanceof TrustError) throw usageError(err.message);
    throw err;
  }

  const outbox = await Outbox.open(store.path(FILES.outbox), { maxBytes: outboxMax, logger });
  const socketPath = values["event-socket"] === "off" ? undefined : (values["event-socket"] ?? store.path(FILES.socket));
  const spoolDir = values["spool-dir"] === "off" ? undefined : (values["spool-dir"] ?? store.path(FILES.spool));
  const events = new LocalEventSource({
    ...(socketPath ? { socketPath } : {}),
    ...(spoolDir ? { spoolDir } : {}),
    sink: async (records) => {
      await outbox.append("events", records);
    },
    logger,
  });
  // Also the single-instance check: a second `run` on this directory stops here.
  try {
    await events.start();
  } catch (err) {
    transport.close();
    throw new ExitError(EXIT.FAILURE, (err as Error).message);
  }

  const client = gatewayClient(transport.transport);
  if (mtls === "auto" && transport.url.protocol === "https:") {
    certificates = new CertificateKeeper({ client, identity, agentId: state.agentId, store, logger, reconnect: () => transport.reconnect() });
  }
  let onEvent: (event: SupervisorEvent) => void = () => {};
  const supervisor = new Supervisor({
    client,
    ...(certificates ? { certificates, reconnect: () => transport.reconnect() } : {}),
    identity,
    store,
    state,
    outbox,
    backoff: { initialMs: backoffInitial, maxMs: backoffMax, floorMs: Math.min(100, backoffInitial) },
    healthyAfterMs,
    hostInfo: () => hostFacts(version(), labels),
    lastConnectionError: () => transport.lastConnectionError(),
    observer: (event) => onEvent(event),
    version,
    commands: {
      releaseKeys,
      ...(values["update-command"] ? { updateCommand: values["update-command"] } : {}),
      updateTimeoutMs,
      stateDir: dir,
      installedVersion: async (hookSaid, manifestVersion) => {
        const fromFile = versionFile ? readVersionFile(versionFile) : undefined;
        if (fromFile) return fromFile;
        const installed = hookSaid ?? manifestVersion;
        state.installedVersion = { version: installed, replaced: builtIn };
        return installed;
      },
    },
    logger,
  });

  const collector = new HostCollector();
  const collect = async () => {
    try {
      const dropped = await outbox.append("telemetry", collector.sample({ "agent.outbox.bytes": outbox.stats().bytes }));
      if (dropped) logger.warn(dropped, "outbox full: oldest items dropped");
    } catch (err) {
      logger.error({ err }, "could not store telemetry");
    }
  };
  const collectTimer = telemetryMs > 0 ? setInterval(() => void collect(), telemetryMs) : undefined;
  if (telemetryMs > 0) void collect();

  const startedAt = new Date().toISOString();
  const status = (): RuntimeStatus => ({
    pid: process.pid,
    startedAt,
    updatedAt: new Date().toISOString(),
    connected: supervisor.live.connected,
    ...(supervisor.live.lastContactAt ? { lastContactAt: new Date(supervisor.live.lastContactAt).toISOString() } : {}),
    ...(supervisor.live.lastError ? { lastError: supervisor.live.lastError } : {}),
    ...(supervisor.live.replicaId ? { replicaId: supervisor.live.replicaId } : {}),
    agentVersion: version(),
    ...(supervisor.sessionExpiresAt ? { sessionExpiresAt: supervisor.sessionExpiresAt.toISOString() } : {}),
    outbox: outbox.stats(),
    ...(supervisor.uploads
      ? { uploaded: { points: supervisor.uploads.points, events: supervisor.uploads.events, duplicates: supervisor.uploads.duplicates } }
      : {}),
    reconnects: supervisor.live.reconnects,
  });
  const writeStatus = () => store.saveStatus(status()).catch((err) => logger.warn({ err }, "could not write status.json"));
  const statusTimer = setInterval(() => void writeStatus(), 10_000);
  onEvent = (event) => {
    if (event.type === "connected" || event.type === "disconnected") void writeStatus();
  };

  let signalled: string | undefined;
  const onSignal = (signal: string) => {
    if (signalled) return;
    signalled = signal;
    logger.info({ signal }, "stopping");
    void supervisor.stop();
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));

  logger.info({ agentId: state.agentId, server: transport.url.origin, version: version(), outbox: outbox.stats() }, "agent starting");
  const result = await supervisor.run();

  // Shutdown: no new local events, everything accepted is already fsynced in the outbox.
  clearInterval(statusTimer);
  if (collectTimer) clearInterval(collectTimer);
  await events.stop();
  await supervisor.stop();
  await store.flush();
  await writeStatus();
  transport.close();
  logger.info({ exitCode: result.exitCode, reason: result.reason, outbox: outbox.stats() }, "agent stopped");
  if (result.exitCode !== EXIT.OK) process.stderr.write(`agw-agent: ${result.reason}\n`);
  return result.exitCode;
}
