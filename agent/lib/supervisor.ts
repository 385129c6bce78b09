import type { Logger } from "pino";
import type { RolloutStage } from "../../gen/agentgateway/v1/control_pb.js";
import { Backoff, type BackoffOptions, DEFAULT_BACKOFF, sleep } from "./backoff.js";
import { type CommandEnvironment, CommandProcessor } from "./commands.js";
import { Connection } from "./connection.js";
import type { ControlRequest, GatewayClient, HostInfo, Identity, Session } from "./direct.js";
import { EXIT } from "./errors.js";
import { Heartbeater } from "./heartbeater.js";
import { delayFor, type Outcome, outcomeOfError } from "./outcome.js";
import type { Outbox } from "./outbox.js";
import type { CertificateKeeper } from "./cert-keeper.js";
import { SessionKeeper } from "./session-keeper.js";
import type { AgentStateFile, StateStore } from "./state.js";
import { Uploader } from "./uploader.js";

/**
 * The reconnect/backoff state machine (the tailscale "auto" half; single requests live in
 * direct.ts). One loop: get a session (session-keeper.ts), serve one ControlStream
 * (connection.ts, with heartbeater.ts and uploader.ts while it is up), map how it ended to an
 * outcome (outcome.ts) and wait — jittered exponential backoff, reset only after the
 * connection stayed healthy, server hints honoured — before the next attempt. Revocation ends
 * the loop for good. Protocol: docs/protocol.md, "ControlStream", "Sessions".
 */
export interface SupervisorOptions {
  client: GatewayClient;
  identity: Identity;
  store: StateStore;
  /** The loaded state file (mutated in place and persisted through `store`). */
  state: AgentStateFile;
  outbox?: Outbox;
  backoff?: BackoffOptions;
  /** A connection up this long resets the backoff (default 30 s). */
  healthyAfterMs?: number;
  /** The gateway must answer the hello within this (default 15 s). */
  welcomeTimeoutMs?: number;
  hostInfo(): HostInfo;
  version(): string;
  /** Rollout settings for the command processor. */
  commands: Pick<CommandEnvironment, "releaseKeys" | "updateCommand" | "updateTimeoutMs" | "stateDir" | "installedVersion">;
  logger: Logger;
  /** Why the transport's last connection was refused (pin mismatch, TLS), to explain failures. */
  lastConnectionError?: () => Error | undefined;
  /** The mTLS client certificate (obtained after the handshake, renewed at half-life); absent = session only. */
  certificates?: CertificateKeeper;
  /** Drops the transport's connection (the next one presents the current certificate). */
  reconnect?: () => void;
  /** Sees every attempt and state change (status file, storm bench). */
  observer?: (event: SupervisorEvent) => void;
  random?: () => number;
  /** How to wait between attempts and between upload retries (tests record the delays instead of sleeping). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** What the supervisor reports to its observer. */
export type SupervisorEvent =
  | { type: "attempt"; at: number; attempt: number }
  | { type: "handshake"; at: number }
  | { type: "connected"; at: number; replicaId: string }
  | { type: "contact"; at: number }
  | { type: "disconnected"; at: number; reason: string; delayMs: number }
  | { type: "revoked"; at: number; reason: string };

/** How `run` ended. */
export interface SupervisorResult {
  exitCode: number;
  reason: string;
}

/** The agent's connection manager. */
export class Supervisor {
  private readonly backoff: Backoff;
  private readonly commands: CommandProcessor;
  private readonly sessions: SessionKeeper;
  private readonly heartbeater: Heartbeater;
  private readonly uploader: Uploader | undefined;
  private readonly stopController = new AbortController();
  private connection: Connection | undefined;
  /** Acks and progress reports waiting for the next welcomed stream. */
  private carry: ControlRequest[] = [];
  private attempts = 0;
  private stopping = false;
  private running: Promise<SupervisorResult> | undefined;
  /** Live facts for status.json. */
  readonly live: { connected: boolean; lastContactAt?: number; replicaId?: string; lastError?: string; reconnects: number } = {
    connected: false,
    reconnects: 0,
  };

  constructor(private readonly options: SupervisorOptions) {
    const random = options.random ?? Math.random;
    const backoff = options.backoff ?? DEFAULT_BACKOFF;
    const { client, logger } = options;
    this.backoff = new Backoff(backoff, random);
    this.sessions = new SessionKeeper({
      client,
      identity: options.identity,
      store: options.store,
      state: options.state,
      logger,
      random,
      onHandshake: () => this.emit({ type: "handshake", at: Date.now() }),
    });
    this.commands = new CommandProcessor({
      ...options.commands,
      state: options.state,
      persist: () => options.store.save(options.state),
      currentVersion: () => options.version(),
      progress: (rolloutId, stage, message) => this.progress(rolloutId, stage, message),
      ack: (sequence, status, reason) => this.sendControl({ kind: { case: "ack", value: { sequence, status, reason: reason.slice(0, 1024) } } }),
      logger,
    });
    const session = () => this.sessions.current;
    this.heartbeater = new Heartbeater({
      client,
      session,
      ...(options.outbox ? { outbox: options.outbox } : {}),
      version: options.version,
      hostInfo: options.hostInfo,
      logger,
      random,
      contact: () => this.contact(),
    });
    // The same backoff configuration as the reconnects (--backoff-*), with its own counter.
    this.uploader = options.outbox
      ? new Uploader({ outbox: options.outbox, client, session, logger, backoff, random, ...(options.sleep ? { sleep: options.sleep } : {}) })
      : undefined;
  }

  /** Upload counters (undefined without an outbox). */
  get uploads() {
    return this.uploader?.counters;
  }

  /** When the current session ends (never the token). */
  get sessionExpiresAt(): Date | undefined {
    return this.sessions.current?.expiresAt;
  }

  /** Runs until stopped (exit 0), revoked (78) or the identity is unusable (79). */
  run(): Promise<SupervisorResult> {
    this.running ??= this.loop();
    return this.running;
  }

  /** Graceful stop: ends the stream cleanly (then cuts it after `graceMs`) and waits for the loop. */
  async stop(graceMs = 3000): Promise<SupervisorResult | undefined> {
    this.stopping = true;
    this.stopController.abort();
    this.connection?.end(graceMs);
    return await this.running;
  }

  private async loop(): Promise<SupervisorResult> {
    const { logger, state } = this.options;
    if (state.revoked) return { exitCode: EXIT.REVOKED, reason: `this agent was revoked at ${state.revoked.at}: ${state.revoked.reason}` };
    await this.sessions.load();
    await this.options.certificates?.load();
    while (!this.stopping) {
      this.attempts++;
      this.emit({ type: "attempt", at: Date.now(), attempt: this.attempts });
      let outcome: Outcome;
      try {
        const session = await this.sessions.ensure();
        if (this.stopping) break;
        const certificates = this.options.certificates;
        if (certificates) {
          await certificates.ensure(session);
          if (certificates.takeChanged()) this.options.reconnect?.();
        }
        outcome = await this.connectOnce(session);
      } catch (err) {
        outcome = outcomeOfError(err, false, undefined, { sessions: this.sessions, logger, cause: this.options.lastConnectionError?.() });
      }
      if (outcome.kind === "revoked") return await this.onRevoked(outcome.reason);
      if (outcome.kind === "unusable") {
        logger.error({ reason: outcome.reason }, "this agent's identity can no longer be used: enroll again with a new token");
        return { exitCode: EXIT.IDENTITY_UNUSABLE, reason: outcome.reason };
      }
      if (this.stopping) break;
      const delayMs = delayFor(outcome, this.backoff);
      this.live.lastError = outcome.reason;
      this.live.reconnects++;
      this.emit({ type: "disconnected", at: Date.now(), reason: outcome.reason, delayMs });
      const log = outcome.superseded ? logger.error.bind(logger) : logger.info.bind(logger);
      log(
        { reason: outcome.reason, retryInMs: delayMs, failures: this.backoff.attempt },
        outcome.superseded ? "another process is using this agent's identity (stream superseded); backing off" : "disconnected; reconnecting",
      );
      await (this.options.sleep ?? sleep)(delayMs, this.stopController.signal);
    }
    await Promise.race([this.commands.idle(), sleep(2000)]);
    return { exitCode: EXIT.OK, reason: "stopped" };
  }

  /** One connection: open the stream and serve it until it ends. */
  private async connectOnce(session: Session): Promise<Outcome> {
    const { options } = this;
    const connection = new Connection(
      {
        client: options.client,
        state: options.state,
        version: options.version,
        commands: this.commands,
        sessions: this.sessions,
        heartbeater: this.heartbeater,
        uploader: this.uploader,
        backoff: this.backoff,
        healthyAfterMs: options.healthyAfterMs ?? 30_000,
        welcomeTimeoutMs: options.welcomeTimeoutMs ?? 15_000,
        logger: options.logger,
        stopping: () => this.stopping,
        contact: () => this.contact(),
        connected: (replicaId, at) => {
          this.live.connected = true;
          this.live.replicaId = replicaId;
          this.emit({ type: "connected", at, replicaId });
        },
        takeCarried: () => this.carry.splice(0),
        ended: (unsent) => {
          this.live.connected = false;
          this.carry.push(...unsent);
        },
        ...(options.lastConnectionError ? { lastConnectionError: options.lastConnectionError } : {}),
      },
      session,
    );
    this.connection = connection;
    const renewal = this.scheduleRenewal(connection, session);
    try {
      return await connection.run();
    } finally {
      clearTimeout(renewal);
      this.connection = undefined;
    }
  }

  /** Renews the client certificate at half of its lifetime, then restarts the stream on a new connection. */
  private scheduleRenewal(connection: Connection, session: Session): NodeJS.Timeout | undefined {
    const certificates = this.options.certificates;
    const at = certificates?.renewAt();
    if (!certificates || at === undefined) return undefined;
    const timer = setTimeout(
      () => {
        if (this.stopping) return;
        certificates.issue(this.sessions.current ?? session).then(
          () => connection.restart(),
          (err: unknown) => this.options.logger.warn({ err }, "renewing the client certificate failed; retrying at the next connection"),
        );
      },
      Math.max(1000, at - Date.now()),
    );
    timer.unref();
    return timer;
  }

  private async onRevoked(reason: string): Promise<SupervisorResult> {
    const { store, state, logger } = this.options;
    this.stopping = true;
    this.sessions.forget();
    state.revoked = { at: new Date().toISOString(), reason, source: "gateway" };
    try {
      await store.clearSession();
      await store.save(state);
    } catch (err) {
      // Still exit 78; without the mark the next start asks the gateway and is refused again.
      logger.error({ err }, "could not record the revocation in the state directory");
    }
    this.emit({ type: "revoked", at: Date.now(), reason });
    logger.error({ reason }, "this agent was revoked: stopping for good (exit 78); an operator must un-revoke it");
    return { exitCode: EXIT.REVOKED, reason };
  }

  /** Sends an ack or progress report now, or on the next stream if none is up. */
  private sendControl(message: ControlRequest): void {
    if (!this.connection?.send(message)) this.carry.push(message);
  }

  private progress(rolloutId: string, stage: RolloutStage, message: string): void {
    this.sendControl({ kind: { case: "rolloutProgress", value: { rolloutId, stage, message: message.slice(0, 1024) } } });
    // After a rollout the gateway verifies the wave from heartbeats: report the version now.
    this.heartbeater.requestNow();
  }

  private contact(): void {
    const at = Date.now();
    this.live.lastContactAt = at;
    this.emit({ type: "contact", at });
  }

  private emit(event: SupervisorEvent): void {
    try {
      this.options.observer?.(event);
    } catch {
      // An observer bug must not break the connection loop.
    }
  }
}
