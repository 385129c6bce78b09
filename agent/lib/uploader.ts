import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { EventSeverity } from "../../gen/agentgateway/v1/ingest_pb.js";
import { Code } from "@connectrpc/connect";
import { Backoff, type BackoffOptions, DEFAULT_BACKOFF, sleep } from "./backoff.js";
import { type GatewayClient, type Session, uploadEvents, uploadTelemetry } from "./direct.js";
import { asConnectError, classify, isRateLimited } from "./errors.js";
import type { Batch, EventRecord, Outbox, OutboxKind, PointRecord } from "./outbox.js";

/** Thrown out of the uploader when the connection as a whole must change (revoked, re-auth). */
export class UploadEscalation extends Error {
  override name = "UploadEscalation";
  constructor(
    readonly verdict: "revoked" | "reauthenticate",
    message: string,
    readonly token: string,
  ) {
    super(message);
  }
}

/** Counters for status and logs. */
export interface UploadCounters {
  points: number;
  events: number;
  duplicates: number;
  rejected: number;
}

const timestamp = (r: { s: number; n: number }) => ({ seconds: BigInt(r.s), nanos: r.n });

function toPoint(r: PointRecord) {
  return { id: r.id, name: r.name, labels: r.labels, value: r.value, observedAt: timestamp(r) };
}

function toEvent(r: EventRecord) {
  return {
    id: r.id,
    type: r.type,
    severity: r.severity,
    message: r.message,
    attributes: r.attributes,
    payload: r.payload ? new Uint8Array(Buffer.from(r.payload, "base64")) : new Uint8Array(),
    occurredAt: timestamp(r),
  };
}

/** What the uploader works with. */
export interface UploaderOptions {
  outbox: Outbox;
  client: GatewayClient;
  /** The session to upload with (the supervisor's current one). */
  session(): Session | undefined;
  logger: Logger;
  /** The agent's one backoff configuration (`--backoff-*`), shared with reconnects. */
  backoff?: BackoffOptions;
  random?: () => number;
  /** How to wait before a retry (tests record the delays instead of sleeping). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/**
 * Drains the outbox to the gateway while a connection is up: oldest first per kind, one
 * batch per call within the gateway's limits, files deleted only after the gateway accepted
 * them. Transient failures wait (jittered, honouring retry hints) and retry the same batch;
 * a batch the gateway refuses as invalid (or as too large) is bisected so only the bad items
 * are dropped (and reported); revocation and a dead session escalate to the supervisor.
 */
export class Uploader {
  readonly counters: UploadCounters = { points: 0, events: 0, duplicates: 0, rejected: 0 };
  private readonly backoff: Backoff;
  private readonly outbox: Outbox;
  private readonly client: GatewayClient;
  private readonly session: () => Session | undefined;
  private readonly logger: Logger;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;

  constructor(options: UploaderOptions) {
    this.outbox = options.outbox;
    this.client = options.client;
    this.session = options.session;
    this.logger = options.logger;
    this.backoff = new Backoff(options.backoff ?? DEFAULT_BACKOFF, options.random);
    this.sleep = options.sleep ?? sleep;
  }

  /** Uploads until `signal` aborts; throws UploadEscalation when the supervisor must act. */
  async run(signal: AbortSignal): Promise<void> {
    const kinds: OutboxKind[] = ["events", "telemetry"];
    while (!signal.aborted) {
      let sent = false;
      for (const kind of kinds) {
        if (signal.aborted) return;
        const batch = await this.outbox.nextBatch(kind);
        if (!batch) continue;
        sent = true;
        try {
          await this.send(batch, signal);
          await this.outbox.complete(batch);
          this.backoff.reset();
        } catch (err) {
          this.outbox.release(batch);
          if (err instanceof UploadEscalation || signal.aborted) throw err;
          const verdict = classify(err);
          const wait = this.backoff.next(verdict.kind === "transient" ? (verdict.retryAfterMs ?? 0) : 0);
          this.logger.warn({ kind, items: batch.records.length, code: verdict.kind, error: verdict.message, retryInMs: wait }, "upload failed; will retry");
          await this.sleep(wait, signal);
          break;
        }
      }
      if (!sent) await this.outbox.waitForData(signal);
    }
  }

  private async send(batch: Batch, signal: AbortSignal): Promise<void> {
    const rejected: string[] = [];
    await this.sendRecords(batch.kind, batch.records, signal, rejected);
    if (rejected.length > 0) {
      this.counters.rejected += rejected.length;
      // The loss is reported like an outbox drop, so operators see it in the event stream.
      const now = Date.now();
      const event: EventRecord = {
        id: randomUUID(),
        type: "agent.upload.rejected",
        severity: EventSeverity.ERROR,
        message: `the gateway refused ${rejected.length} ${batch.kind === "telemetry" ? "metric points" : "events"}: ${rejected[0]}`.slice(0, 4096),
        attributes: { count: String(rejected.length), kind: batch.kind },
        s: Math.floor(now / 1000),
        n: (now % 1000) * 1_000_000,
      };
      await this.outbox.append("events", [event]);
    }
  }

  private async sendRecords(kind: OutboxKind, records: Array<PointRecord | EventRecord>, signal: AbortSignal, rejected: string[]): Promise<void> {
    if (records.length === 0) return;
    const session = this.session();
    if (!session) throw new UploadEscalation("reauthenticate", "no session", "");
    try {
      const res =
        kind === "telemetry"
          ? await uploadTelemetry(this.client, session, (records as PointRecord[]).map(toPoint), signal)
          : await uploadEvents(this.client, session, (records as EventRecord[]).map(toEvent), signal);
      if (kind === "telemetry") this.counters.points += res.accepted;
      else this.counters.events += res.accepted;
      this.counters.duplicates += res.duplicates;
      if (res.duplicates > 0) this.logger.debug({ kind, duplicates: res.duplicates }, "gateway already had some items (resend)");
    } catch (err) {
      const verdict = classify(err);
      if (verdict.kind === "revoked") throw new UploadEscalation("revoked", verdict.message, session.token);
      if (verdict.kind === "reauthenticate" || verdict.kind === "awaiting-approval" || verdict.kind === "identity-unusable") {
        // A newer session may have replaced this one while the call was in flight: retry with it.
        const current = this.session();
        if (current && current.token !== session.token) return await this.sendRecords(kind, records, signal, rejected);
        throw new UploadEscalation("reauthenticate", verdict.message, session.token);
      }
      // RESOURCE_EXHAUSTED without the RATE_LIMITED reason is a message over the gateway's size
      // limit (docs/protocol.md, "Errors"). Retrying the same bytes would never end.
      const tooLarge = asConnectError(err).code === Code.ResourceExhausted && !isRateLimited(err);
      if (verdict.kind !== "invalid" && !tooLarge) throw err;
      if (records.length === 1) {
        this.logger.error(
          { kind, id: records[0]?.id, error: verdict.message },
          tooLarge ? "gateway refused an item as too large; dropping it" : "gateway refused an item as invalid; dropping it",
        );
        rejected.push(verdict.message);
        return;
      }
      const half = Math.ceil(records.length / 2);
      await this.sendRecords(kind, records.slice(0, half), signal, rejected);
      await this.sendRecords(kind, records.slice(half), signal, rejected);
    }
  }
}
