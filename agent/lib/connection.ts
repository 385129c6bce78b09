import type { Logger } from "pino";
import { type GoAway, GoAwayReason, type ServerWelcome } from "../../gen/agentgateway/v1/control_pb.js";
import type { Backoff } from "./backoff.js";
import { CAPABILITIES, type CommandProcessor } from "./commands.js";
import { type ControlChannel, type ControlRequest, type GatewayClient, msOf, openControlStream, type Session } from "./direct.js";
import { classify } from "./errors.js";
import type { Heartbeater } from "./heartbeater.js";
import { type Escalation, type Outcome, outcomeOfError, outcomeOfEscalation, outcomeOfGoAway } from "./outcome.js";
import type { SessionKeeper } from "./session-keeper.js";
import type { AgentStateFile } from "./state.js";
import { UploadEscalation, type Uploader } from "./uploader.js";

/** What one connection works with; owned by the supervisor, shared by its connections. */
export interface ConnectionEnv {
  client: GatewayClient;
  state: AgentStateFile;
  version(): string;
  commands: CommandProcessor;
  sessions: SessionKeeper;
  heartbeater: Heartbeater;
  uploader: Uploader | undefined;
  backoff: Backoff;
  /** A connection up this long resets the backoff. */
  healthyAfterMs: number;
  /** The gateway must answer the hello within this. */
  welcomeTimeoutMs: number;
  logger: Logger;
  stopping(): boolean;
  /** The gateway said something. */
  contact(): void;
  /** The welcome arrived. */
  connected(replicaId: string, at: number): void;
  /** Acks and progress reports queued while no stream was up (taken at the welcome). */
  takeCarried(): ControlRequest[];
  /** The stream ended; `unsent` are the acks and progress reports that never reached the wire. */
  ended(unsent: ControlRequest[]): void;
  /** Why the transport's last connection was refused (pin mismatch, TLS). */
  lastConnectionError?: () => Error | undefined;
}

/**
 * One ControlStream, from the hello to its end: answers pings, hands commands to the
 * processor, runs heartbeats, uploads and the session refresh while it is up, and turns
 * however it ended into an Outcome. Protocol: docs/protocol.md, "ControlStream".
 */
export class Connection {
  private readonly channel: ControlChannel;
  private readonly background: Array<Promise<void>> = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly signal = new AbortController();
  private welcomed = false;
  private connectedAt: number | undefined;
  private refreshed = false;
  private escalation: Outcome | undefined;
  private goAway: GoAway | undefined;

  constructor(
    private readonly env: ConnectionEnv,
    private readonly session: Session,
  ) {
    this.channel = openControlStream(env.client, session, {
      agentVersion: env.version(),
      lastAppliedSequence: BigInt(env.state.lastAppliedSequence),
      capabilities: CAPABILITIES,
    });
  }

  /** Sends on this stream if it is welcomed; false if the caller must keep the message. */
  send(message: ControlRequest): boolean {
    if (!this.welcomed) return false;
    this.channel.send(message);
    return true;
  }

  /** Ends the stream so the loop reconnects at once (a renewed client certificate needs a new connection). */
  restart(): void {
    this.refreshed = true;
    this.channel.end();
  }

  /** Half-closes cleanly, and cuts the stream if it is still open after `graceMs`. */
  end(graceMs: number): void {
    this.channel.end();
    setTimeout(() => this.channel.abort(new Error("agent stopping")), graceMs).unref();
  }

  /** Serves the stream until it ends; resolves with what the reconnect loop should do. */
  async run(): Promise<Outcome> {
    const { env, channel } = this;
    let streamError: unknown;
    const welcomeTimer = setTimeout(() => this.escalate({ kind: "retry", reason: "the gateway did not answer the hello in time" }), env.welcomeTimeoutMs);
    try {
      for await (const message of channel.responses) {
        env.contact();
        const kind = message.kind;
        switch (kind.case) {
          case "welcome":
            clearTimeout(welcomeTimer);
            this.onWelcome(kind.value);
            break;
          case "ping":
            channel.send({ kind: { case: "pong", value: { nonce: kind.value.nonce } } });
            break;
          case "command":
            env.commands.submit(kind.value);
            break;
          case "goAway":
            this.goAway = kind.value;
            env.logger.info(
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
      for (const t of this.timers) clearTimeout(t);
      this.signal.abort();
      channel.abort();
      this.welcomed = false;
      env.ended(channel.unsent().filter((m) => m.kind?.case === "ack" || m.kind?.case === "rolloutProgress"));
      await Promise.allSettled(this.background);
    }
    return this.outcome(streamError);
  }

  private outcome(streamError: unknown): Outcome {
    const { env, goAway } = this;
    const healthy = this.connectedAt !== undefined && Date.now() - this.connectedAt >= env.healthyAfterMs;
    const e = this.escalation;
    if (e) {
      if (e.kind === "revoked" && goAway?.reason === GoAwayReason.REVOKED && goAway.message) return { kind: "revoked", reason: goAway.message };
      return e.kind === "retry" ? { ...e, healthy } : e;
    }
    if (goAway) return outcomeOfGoAway(goAway, this.session, healthy, env.sessions);
    if (this.refreshed) return { kind: "retry", reason: "session refreshed: reopening the stream", immediate: true };
    if (env.stopping()) return { kind: "retry", reason: "stopping" };
    if (streamError !== undefined) {
      return outcomeOfError(streamError, healthy, this.session, { sessions: env.sessions, logger: env.logger, cause: env.lastConnectionError?.() });
    }
    return { kind: "retry", reason: "the stream ended without a GoAway", healthy };
  }

  /** Ends the connection because of what a background task (or the welcome timer) saw. */
  private escalate(outcome: Outcome): void {
    if (this.escalation) return;
    this.escalation = outcome;
    if (outcome.kind === "revoked" && !this.goAway) {
      // An RPC saw PERMISSION_DENIED first; the stream's GoAway REVOKED carries the
      // operator's reason and is usually a moment behind, so give it that moment.
      this.timers.push(setTimeout(() => this.channel.abort(new Error(outcome.reason)), 1500));
    } else {
      this.channel.abort(new Error(outcome.reason));
    }
  }

  private escalateFrom(e: Escalation): void {
    this.escalate(outcomeOfEscalation(e, this.env.sessions));
  }

  private onWelcome(welcome: ServerWelcome): void {
    const { env, channel, session } = this;
    const signal = this.signal.signal;
    this.welcomed = true;
    this.connectedAt = Date.now();
    env.connected(welcome.replicaId, this.connectedAt);
    env.logger.info({ replica: welcome.replicaId, maxStreamAgeMs: msOf(welcome.maxStreamAge, 0) }, "connected: control stream open");
    for (const m of env.takeCarried()) channel.send(m);
    // Only a connection that stays up this long forgives earlier failures.
    this.timers.push(setTimeout(() => env.backoff.reset(), env.healthyAfterMs));
    this.timers.push(
      env.sessions.scheduleRefresh(session, {
        stopping: env.stopping,
        refreshed: () => {
          this.refreshed = true;
          channel.end();
        },
        failed: (err) => {
          const verdict = classify(err);
          if (verdict.kind === "revoked") return this.escalate({ kind: "revoked", reason: verdict.message });
          if (verdict.kind === "identity-unusable") return this.escalate({ kind: "unusable", reason: verdict.message });
          // Keep the current session and stream; the reconnect loop handshakes if it expires.
          env.logger.warn({ code: verdict.kind, error: verdict.message }, "session refresh failed; will handshake when the session ends");
        },
      }),
    );
    this.background.push(env.heartbeater.run(msOf(welcome.heartbeatInterval, session.heartbeatIntervalMs), signal, (e) => this.escalateFrom(e)));
    const uploader = env.uploader;
    if (uploader) {
      this.background.push(
        uploader.run(signal).catch((err: unknown) => {
          if (err instanceof UploadEscalation) this.escalateFrom({ verdict: err.verdict, reason: err.message, token: err.token });
          else if (!signal.aborted) env.logger.error({ err }, "uploader stopped unexpectedly");
        }),
      );
    }
  }
}
