import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import { AgentStatus } from "../../gen/agentgateway/v1/ingest_pb.js";
import { type GatewayClient, type HostInfo, type Session, sendHeartbeat } from "./direct.js";
import { classify } from "./errors.js";
import type { Escalation } from "./outcome.js";
import type { Outbox } from "./outbox.js";

/** What the heartbeater reports and with what. */
export interface HeartbeaterOptions {
  client: GatewayClient;
  /** The session to beat with (the supervisor's current one). */
  session(): Session | undefined;
  /** Its drop counter turns the status DEGRADED. */
  outbox?: Outbox;
  version(): string;
  hostInfo(): HostInfo;
  logger: Logger;
  random: () => number;
  /** The gateway answered. */
  contact(): void;
}

/**
 * Sends UploadHeartbeat while a connection is up, at the interval the gateway asks for (±10 %
 * so a fleet that connected together does not beat together), and at once when asked to (after
 * a rollout, so the gateway can verify the wave from the reported version).
 */
export class Heartbeater {
  private readonly startedAt = Date.now();
  private requested = false;
  private wake: (() => void) | undefined;

  constructor(private readonly options: HeartbeaterOptions) {}

  /** Sends the next heartbeat now (or right after the one in flight). */
  requestNow(): void {
    this.requested = true;
    this.wake?.();
  }

  /** Beats until `signal` aborts; revocation and a refused session go to `escalate`. */
  async run(initialMs: number, signal: AbortSignal, escalate: (e: Escalation) => void): Promise<void> {
    const { client, logger, outbox } = this.options;
    let intervalMs = initialMs;
    let droppedSeen = outbox?.stats().droppedTotal ?? 0;
    while (!signal.aborted) {
      const session = this.options.session();
      if (!session) return;
      this.requested = false;
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
        this.options.contact();
        if (res.nextIntervalMs) intervalMs = res.nextIntervalMs;
      } catch (err) {
        if (signal.aborted) return;
        const verdict = classify(err);
        if (verdict.kind === "revoked") return escalate({ verdict: "revoked", reason: verdict.message, token: session.token });
        if (verdict.kind === "reauthenticate" && this.options.session()?.token === session.token) {
          return escalate({ verdict: "reauthenticate", reason: verdict.message, token: session.token });
        }
        logger.warn({ code: verdict.kind, error: verdict.message }, "heartbeat failed");
      }
      // Asked for while this one was in flight (a rollout finished): send again right away.
      if (this.requested) continue;
      await this.pause(intervalMs * (0.9 + this.options.random() * 0.2), signal);
    }
  }

  private async pause(ms: number, signal: AbortSignal): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      this.wake = done;
      function done() {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
      signal.addEventListener("abort", done, { once: true });
    });
    this.wake = undefined;
  }
}
