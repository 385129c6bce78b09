import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import { type GoAway, GoAwayReason, type RolloutStage, type ServerWelcome } from "../../gen/agentgateway/v1/control_pb.js";
import { AgentStatus } from "../../gen/agentgateway/v1/ingest_pb.js";
import { Backoff, type BackoffOptions, DEFAULT_BACKOFF } from "./backoff.js";
import { CAPABILITIES, type CommandEnvironment, CommandProcessor } from "./commands.js";
import {
  type ControlChannel,
  type ControlRequest,
  type GatewayClient,
  type HostInfo,
  type Identity,
  msOf,
  openControlStream,
  type Session,
  handshake,
  sendHeartbeat,
} from "./direct.js";
import { classify, EXIT, type Verdict } from "./errors.js";
import type { Outbox } from "./outbox.js";
import type { AgentStateFile, StateStore } from "./state.js";
import { sleep, UploadEscalation, Uploader } from "./uploader.js";

/**
 * The reconnect/backoff state machine (the tailscale "auto" half; single requests live in
 * direct.ts). One loop: get a session (handshake only when needed), open the ControlStream,
 * and while it is up send heartbeats, drain the outbox and apply commands; when it ends, act
 * on the GoAway reason or the error code and wait — jittered exponential backoff, reset only
 * after the connection stayed healthy, server hints honoured — before the next attempt.
 * Revocation ends the loop for good. Protocol: docs/protocol.md, "ControlStream", "Sessions".
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
  /** Sees every attempt and state change (status file, storm bench). */
  observer?: (event: SupervisorEvent) => void;
  random?: () => number;
  /** How to wait between attempts (tests record the delays instead of sleeping). */
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

type Outcome =
  | { kind: "revoked"; reason: string }
  | { kind: "unusable"; reason: string }
  | { kind: "retry"; reason: string; hintMs?: number; healthy?: boolean; immediate?: boolean; superseded?: boolean };

/** Keep using a session until this close to its expiry (or 10 % of its lifetime, if shorter). */
const SESSION_MARGIN_MS = 10_000;

/** The agent's connection manager. */
export class Supervisor {
  private readonly backoff: Backoff;
  private readonly random: () => number;
  private readonly commands: CommandProcessor;
  private readonly uploader: Uploader | undefined;
  private readonly stopController = new AbortController();
  private session: Session | undefined;
  /** A token the gateway refused: never adopted again from session.json. */
  private refusedToken: string | undefined;
  private channel: ControlChannel | undefined;
  private welcomed = false;
  private carry: ControlRequest[] = [];
  private attempts = 0;
  private stopping = false;
  private refreshedSession = false;
  /** A session refresh in flight (its handshake fences the current stream). */
  private refreshing: Promise<Session> | undefined;
  private connectedAt: number | undefined;
  private heartbeatNow: (() => void) | undefined;
  private heartbeatRequested = false;
  private running: Promise<SupervisorResult> | undefined;
  private readonly startedAt = Date.now();
  /** Live facts for status.json. */
  readonly live: { connected: boolean; lastContactAt?: number; replicaId?: string; lastError?: string; reconnects: number } = {
    connected: false,
    reconnects: 0,
  };

  constructor(private readonly options: SupervisorOptions) {
    this.random = options.random ?? Math.random;
    this.backoff = new Backoff(options.backoff ?? DEFAULT_BACKOFF, this.random);
    this.commands = new CommandProcessor({
      ...options.commands,
      state: options.state,
      persist: () => options.store.save(options.state),
      currentVersion: () => options.version(),
      progress: (rolloutId, stage, message) => this.progress(rolloutId, stage, message),
      ack: (sequence, status, reason) => this.sendControl({ kind: { case: "ack", value: { sequence, status, reason: reason.slice(0, 1024) } } }),
      logger: options.logger,
    });
    this.uploader = options.outbox ? new Uploader(options.outbox, options.client, () => this.session, options.logger) : undefined;
  }

  /** Upload counters (undefined without an outbox). */
  get uploads() {
    return this.uploader?.counters;
  }

  /** When the current session ends (never the token). */
  get sessionExpiresAt(): Date | undefined {
    return this.session?.expiresAt;
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
    const channel = this.channel;
    if (channel) {
      channel.end();
      const timer = setTimeout(() => channel.abort(new Error("agent stopping")), graceMs);
      timer.unref();
    }
    return await this.running;
  }

  private async loop(): Promise<SupervisorResult> {
    const { logger, state } = this.options;
    if (state.revoked) return { exitCode: EXIT.REVOKED, reason: `this agent was revoked at ${state.revoked.at}: ${state.revoked.reason}` };
    this.session = await this.storedSession();
    while (!this.stopping) {
      this.attempts++;
      this.emit({ type: "attempt", at: Date.now(), attempt: this.attempts });
      let outcome: Outcome;
      try {
        const session = await this.ensureSession();
        if (this.stopping) break;
        outcome = await this.connectOnce(session);
      } catch (err) {
        outcome = this.outcomeOfError(err, false);
      }
      if (outcome.kind === "revoked") return await this.onRevoked(outcome.reason);
      if (outcome.kind === "unusable") {
        logger.error({ reason: outcome.reason }, "this agent's identity can no longer be used: enroll again with a new token");
        return { exitCode: EXIT.IDENTITY_UNUSABLE, reason: outcome.reason };
      }
      if (this.stopping) break;
      const delayMs = this.delayFor(outcome);
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
    await this.commandsIdle(2000);
    return { exitCode: EXIT.OK, reason: "stopped" };
  }

  /**
   * The wait before the next attempt. After a healthy connection a GoAway's (already
   * jittered) reconnect_after is used as is; otherwise the failure counts and the jittered
   * backoff applies, with any server hint as its floor.
   */
  private delayFor(outcome: Extract<Outcome, { kind: "retry" }>): number {
    if (outcome.immediate) return 0;
    if (outcome.superseded) return this.backoff.next(this.backoff.options.maxMs);
    if (outcome.healthy) {
      this.backoff.reset();
      if (outcome.hintMs !== undefined) return outcome.hintMs;
    }
    return this.backoff.next(outcome.hintMs ?? 0);
  }

  /** The session to use: the current one while valid, one another command stored, or a new handshake. */
  private async ensureSession(): Promise<Session> {
    if (this.refreshing) {
      try {
        return await this.refreshing;
      } catch {
        // the refresh failed: decide below like any other time
      }
    }
    if (this.session && this.usable(this.session)) return this.session;
    const stored = await this.storedSession();
    if (stored && stored.token !== this.session?.token) {
      this.session = stored;
      return stored;
    }
    return await this.newSession();
  }

  private async newSession(): Promise<Session> {
    const { client, identity, state, store, logger } = this.options;
    this.emit({ type: "handshake", at: Date.now() });
    const session = await handshake(client, state.agentId, identity);
    this.session = session;
    await store.saveSession({
      token: session.token,
      issuedAt: (session.issuedAt ?? new Date()).toISOString(),
      expiresAt: session.expiresAt.toISOString(),
      heartbeatIntervalMs: session.heartbeatIntervalMs,
    });
    if (!state.approvedAt) {
      state.approvedAt = new Date().toISOString();
      await store.save(state);
    }
    logger.info({ expiresAt: session.expiresAt.toISOString() }, "handshake complete: new session");
    return session;
  }

  private usable(session: Session): boolean {
    const lifetime = session.expiresAt.getTime() - (session.issuedAt ?? new Date()).getTime();
    return session.expiresAt.getTime() - Date.now() > Math.min(SESSION_MARGIN_MS, lifetime * 0.1);
  }

  private async storedSession(): Promise<Session | undefined> {
    const stored = await this.options.store.loadSession();
    if (!stored || stored.token === this.refusedToken) return undefined;
    const session: Session = {
      token: stored.token,
      expiresAt: new Date(stored.expiresAt),
      heartbeatIntervalMs: stored.heartbeatIntervalMs || 30_000,
      issuedAt: new Date(stored.issuedAt),
    };
    return this.usable(session) ? session : undefined;
  }

  /** One connection: open the stream and serve it until it ends. */
  private async connectOnce(session: Session): Promise<Outcome> {
    const { client, logger } = this.options;
    this.refreshedSession = false;
    this.connectedAt = undefined;
    this.welcomed = false;
    const channel = openControlStream(client, session, {
      agentVersion: this.options.version(),
      lastAppliedSequence: BigInt(this.options.state.lastAppliedSequence),
      capabilities: CAPABILITIES,
    });
    this.channel = channel;
    const connection = new AbortController();
    const timers: NodeJS.Timeout[] = [];
    const background: Array<Promise<void>> = [];
    let escalation: Outcome | undefined;
    let goAway: GoAway | undefined;
    let streamError: unknown;
    const escalate = (outcome: Outcome) => {
      if (escalation) return;
      escalation = outcome;
      if (outcome.kind === "revoked" && !goAway) {
        // An RPC saw PERMISSION_DENIED first; the stream's GoAway REVOKED carries the
        // operator's reason and is usually a moment behind, so give it that moment.
        timers.push(setTimeout(() => channel.abort(new Error(outcome.reason)), 1500));
      } else {
        channel.abort(new Error(outcome.reason));
      }
    };
    const welcomeTimer = setTimeout(
      () => escalate({ kind: "retry", reason: "the gateway did not answer the hello in time" }),
      this.options.welcomeTimeoutMs ?? 15_000,
    );
    try {
      for await (const message of channel.responses) {
        this.contact();
        const kind = message.kind;
        switch (kind.case) {
          case "welcome":
            clearTimeout(welcomeTimer);
            this.onWelcome(kind.value, session, channel, connection.signal, timers, background, escalate);
            break;
          case "ping":
            channel.send({ kind: { case: "pong", value: { nonce: kind.value.nonce } } });
            break;
          case "command":
            this.commands.submit(kind.value);
            break;
          case "goAway":
            goAway = kind.value;
            logger.info(
              {
                reason: GoAwayReason[kind.value.reason] ?? kind.value.reason,
                reconnectAfterMs: msOf(kind.value.reconnectAfter, 0),
                message: kind.value.message,
              },
              "gateway sent GoAway",
            );
            break;
          default:
            break;
        }
      }
    } catch (err) {
      streamError = err;
    } finally {
      clearTimeout(welcomeTimer);
      for (const t of timers) clearTimeout(t);
      connection.abort();
      channel.abort();
      this.channel = undefined;
      this.welcomed = false;
      this.live.connected = false;
      // Acks and progress reports that never reached the wire go out on the next stream.
      this.carry = [...this.carry, ...channel.unsent().filter((m) => m.kind?.case === "ack" || m.kind?.case === "rolloutProgress")];
      await Promise.allSettled(background);
    }
    const healthy = this.connectedAt !== undefined && Date.now() - this.connectedAt >= (this.options.healthyAfterMs ?? 30_000);
    if (escalation) {
      const e: Outcome = escalation;
      if (e.kind === "revoked" && goAway?.reason === GoAwayReason.REVOKED && goAway.message) return { kind: "revoked", reason: goAway.message };
      return e.kind === "retry" ? { ...e, healthy } : e;
    }
    if (goAway) return this.outcomeOfGoAway(goAway, session, healthy);
    if (this.refreshedSession) return { kind: "retry", reason: "session refreshed: reopening the stream", immediate: true };
    if (this.stopping) return { kind: "retry", reason: "stopping" };
    if (streamError !== undefined) return this.outcomeOfError(streamError, healthy, session);
    return { kind: "retry", reason: "the stream ended without a GoAway", healthy };
  }

  private onWelcome(
    welcome: ServerWelcome,
    session: Session,
    channel: ControlChannel,
    signal: AbortSignal,
    timers: NodeJS.Timeout[],
    background: Array<Promise<void>>,
    escalate: (o: Outcome) => void,
  ): void {
    const { logger } = this.options;
    this.welcomed = true;
    this.connectedAt = Date.now();
    this.live.connected = true;
    this.live.replicaId = welcome.replicaId;
    this.emit({ type: "connected", at: this.connectedAt, replicaId: welcome.replicaId });
    logger.info({ replica: welcome.replicaId, maxStreamAgeMs: msOf(welcome.maxStreamAge, 0) }, "connected: control stream open");
    for (const m of this.carry) channel.send(m);
    this.carry = [];
    // Only a connection that stays up this long forgives earlier failures.
    timers.push(setTimeout(() => this.backoff.reset(), this.options.healthyAfterMs ?? 30_000));
    timers.push(this.scheduleRefresh(session, channel, escalate));
    background.push(this.heartbeats(msOf(welcome.heartbeatInterval, session.heartbeatIntervalMs), signal, escalate));
    if (this.uploader) {
      background.push(
        this.uploader.run(signal).catch((err: unknown) => {
          if (err instanceof UploadEscalation) {
            escalate(err.verdict === "revoked" ? { kind: "revoked", reason: err.message } : this.reauthenticate(err.message, err.token));
          } else if (!signal.aborted) {
            logger.error({ err }, "uploader stopped unexpectedly");
          }
        }),
      );
    }
  }

  /**
   * Handshakes again at about two thirds of the session's lifetime (jittered, so a fleet that
   * connected together does not refresh together), then reopens the stream with the new token.
   */
  private scheduleRefresh(session: Session, channel: ControlChannel, escalate: (o: Outcome) => void): NodeJS.Timeout {
    const issued = (session.issuedAt ?? new Date()).getTime();
    const lifetime = session.expiresAt.getTime() - issued;
    const at = issued + lifetime * (0.6 + this.random() * 0.1);
    const delay = Math.max(1000, at - Date.now());
    const timer = setTimeout(() => {
      void (async () => {
        if (this.session?.token !== session.token || this.stopping) return;
        try {
          this.refreshing = this.newSession();
          await this.refreshing;
          this.refreshedSession = true;
          channel.end();
        } catch (err) {
          const verdict = classify(err);
          if (verdict.kind === "revoked") return escalate({ kind: "revoked", reason: verdict.message });
          if (verdict.kind === "identity-unusable") return escalate({ kind: "unusable", reason: verdict.message });
          // Keep the current session and stream; the reconnect loop handshakes if it expires.
          this.options.logger.warn({ code: verdict.kind, error: verdict.message }, "session refresh failed; will handshake when the session ends");
        } finally {
          this.refreshing = undefined;
        }
      })();
    }, delay);
    timer.unref();
    return timer;
  }

  private async heartbeats(initialMs: number, signal: AbortSignal, escalate: (o: Outcome) => void): Promise<void> {
    const { client, logger, outbox } = this.options;
    let intervalMs = initialMs;
    let droppedSeen = outbox?.stats().droppedTotal ?? 0;
    while (!signal.aborted) {
      const session = this.session;
      if (!session) return;
      this.heartbeatRequested = false;
      const dropped = outbox?.stats().droppedTotal ?? 0;
      try {
        const res = await sendHeartbeat(
          client,
          session,
          {
            status: dropped > droppedSeen ? AgentStatus.DEGRADED : AgentStatus.HEALTHY,
            agentVersion: this.options.version(),
            uptime: durationFromMs(Date.now() - this.startedAt),
            host: this.options.hostInfo(),
          },
          signal,
        );
        droppedSeen = dropped;
        this.contact();
        if (res.nextIntervalMs) intervalMs = res.nextIntervalMs;
      } catch (err) {
        if (signal.aborted) return;
        const verdict = classify(err);
        if (verdict.kind === "revoked") return escalate({ kind: "revoked", reason: verdict.message });
        if (verdict.kind === "reauthenticate" && this.session?.token === session.token) return escalate(this.reauthenticate(verdict.message, session.token));
        logger.warn({ code: verdict.kind, error: verdict.message }, "heartbeat failed");
      }
      // Asked for while this one was in flight (a rollout finished): send again right away.
      if (this.heartbeatRequested) continue;
      // ±10 % so a fleet that connected together does not beat together.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, intervalMs * (0.9 + this.random() * 0.2));
        this.heartbeatNow = done;
        function done() {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          resolve();
        }
        signal.addEventListener("abort", done, { once: true });
      });
      this.heartbeatNow = undefined;
    }
  }

  /** The session was refused: forget it (if still current) so the next attempt handshakes. */
  private reauthenticate(reason: string, token: string): Extract<Outcome, { kind: "retry" }> {
    this.refusedToken = token;
    if (this.session?.token === token) {
      this.session = undefined;
      void this.options.store.clearSession().catch(() => {});
    }
    return { kind: "retry", reason: `session refused (${reason}): handshaking again` };
  }

  private outcomeOfGoAway(goAway: GoAway, session: Session, healthy: boolean): Outcome {
    const hintMs = msOf(goAway.reconnectAfter, 0);
    switch (goAway.reason) {
      case GoAwayReason.REVOKED:
        return { kind: "revoked", reason: goAway.message || "revoked by an operator" };
      case GoAwayReason.SUPERSEDED:
        // This process opens one stream at a time, so a newer one belongs to someone else.
        return { kind: "retry", reason: "superseded by a newer stream of this identity (another process?)", superseded: true, healthy };
      case GoAwayReason.SESSION_ENDED:
        // Our own refresh fenced this stream (its GoAway may beat the handshake's answer here).
        if (this.refreshing || (this.session && this.session.token !== session.token))
          return { kind: "retry", reason: "session replaced: reconnecting with the new one", immediate: true };
        this.refusedToken = session.token;
        this.session = undefined;
        return { kind: "retry", reason: `session ended: ${goAway.message}`, healthy, hintMs };
      default:
        return { kind: "retry", reason: `GoAway ${GoAwayReason[goAway.reason] ?? goAway.reason}: ${goAway.message}`, healthy, hintMs };
    }
  }

  private outcomeOfError(err: unknown, healthy: boolean, session?: Session): Outcome {
    const verdict: Verdict = classify(err);
    const cause = this.options.lastConnectionError?.();
    if (cause) verdict.message = `${verdict.message} (${cause.message})`;
    switch (verdict.kind) {
      case "revoked":
        return { kind: "revoked", reason: verdict.message };
      case "identity-unusable":
        return { kind: "unusable", reason: verdict.message };
      case "awaiting-approval":
        this.options.logger.info("awaiting operator approval; will check again");
        return { kind: "retry", reason: "awaiting operator approval" };
      case "unknown-agent":
        // Not fatal: a gateway pointed at the wrong database would otherwise stop a whole fleet.
        this.options.logger.error(
          { error: verdict.message },
          "the gateway does not know this agent (deleted, or the wrong gateway?); enroll again if it was removed",
        );
        return { kind: "retry", reason: verdict.message };
      case "reauthenticate":
        return session ? { ...this.reauthenticate(verdict.message, session.token), healthy } : { kind: "retry", reason: verdict.message, healthy };
      case "transient":
        return { kind: "retry", reason: verdict.message, healthy, ...(verdict.retryAfterMs !== undefined ? { hintMs: verdict.retryAfterMs } : {}) };
      default:
        return { kind: "retry", reason: verdict.message, healthy };
    }
  }

  private async onRevoked(reason: string): Promise<SupervisorResult> {
    const { store, state, logger } = this.options;
    this.stopping = true;
    this.session = undefined;
    this.channel?.abort();
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
    if (this.channel && this.welcomed) this.channel.send(message);
    else this.carry.push(message);
  }

  private progress(rolloutId: string, stage: RolloutStage, message: string): void {
    this.sendControl({ kind: { case: "rolloutProgress", value: { rolloutId, stage, message: message.slice(0, 1024) } } });
    // After a rollout the gateway verifies the wave from heartbeats: report the version now.
    this.heartbeatRequested = true;
    this.heartbeatNow?.();
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

  private async commandsIdle(maxMs: number): Promise<void> {
    await Promise.race([this.commands.idle(), sleep(maxMs)]);
  }
}
