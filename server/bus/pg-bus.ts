import pg from "pg";
import type { Logger } from "pino";
import { type Bus, MemoryBus, type StatementNotification } from "./bus.js";
import { type BusTopic, type BusTopics, decodeMessage, encodeMessage } from "./topics.js";

const CHANNEL = "agentgateway_events";
/** Notifications sent in one statement (each payload is at most ~8 kB; ids are far smaller). */
const MAX_NOTIFY_BATCH = 256;

/**
 * Cross-replica fan-out over PostgreSQL LISTEN/NOTIFY. A publish is delivered to this
 * replica's listeners at once (so e.g. a revoked session is refused by the next call here, not
 * after a database round trip), then sent to every replica; the echo that comes back is
 * delivered again, which listeners tolerate because every notification is idempotent (a
 * pointer to re-read). The listening
 * connection is re-opened with backoff when it drops; because notifications sent meanwhile are
 * lost, `onResync` then runs so the owner can catch up from the tables (the source of truth).
 */
export class PgBus implements Bus {
  readonly name = "bus";
  private readonly local = new MemoryBus();
  private readonly publisher: pg.Pool;
  private client: pg.Client | undefined;
  private closed = false;
  private reconnectDelayMs = 250;
  private readonly outbox: Array<{ text: string; done: (err?: unknown) => void }> = [];
  private sending = false;

  /** Nothing connects until `start()`; subscribing before is fine (listeners are local). */
  constructor(
    private readonly url: string,
    private readonly logger: Logger,
    private readonly onResync: () => void,
  ) {
    this.publisher = new pg.Pool({ connectionString: url, max: 2 });
    this.publisher.on("error", (err) => logger.warn({ err }, "bus publisher connection failed"));
  }

  /** Connects the listening client; resolves once LISTEN is active. */
  async start(): Promise<void> {
    await this.connect();
  }

  async publish<T extends BusTopic>(topic: T, payload: BusTopics[T]): Promise<void> {
    const text = encodeMessage(topic, payload);
    await this.local.publish(topic, payload);
    await new Promise<void>((resolve, reject) => {
      this.outbox.push({ text, done: (err) => (err === undefined ? resolve() : reject(err)) });
      this.sendOutbox();
    });
  }

  /**
   * Sends the queued notifications, one statement per batch and one batch in flight: a publish
   * with nothing in flight goes out at once, and a burst (a reconnect storm's stream openings,
   * a wave of handshakes) costs one round trip per batch instead of one each. Order is kept
   * (unnest is scanned in order). PostgreSQL delivers identical payloads of one statement once,
   * which is harmless: every notification is a pointer to re-read.
   */
  private sendOutbox(): void {
    if (this.sending || this.outbox.length === 0) return;
    this.sending = true;
    const batch = this.outbox.splice(0, MAX_NOTIFY_BATCH);
    this.publisher
      .query("select pg_notify($1, t) from unnest($2::text[]) as t", [CHANNEL, batch.map((m) => m.text)])
      .then(
        () => {
          for (const m of batch) m.done();
        },
        (err: unknown) => {
          for (const m of batch) m.done(err ?? new Error("pg_notify failed"));
        },
      )
      .finally(() => {
        this.sending = false;
        this.sendOutbox();
      });
  }

  statementNotification<T extends BusTopic>(topic: T, payload: BusTopics[T]): StatementNotification {
    return { channel: CHANNEL, text: encodeMessage(topic, payload) };
  }

  deliverLocal<T extends BusTopic>(topic: T, payload: BusTopics[T]): void {
    void this.local.publish(topic, payload);
  }

  subscribe<T extends BusTopic>(topic: T, listener: (payload: BusTopics[T]) => void): () => void {
    return this.local.subscribe(topic, listener);
  }

  /** Whether the listening connection is up (for health). */
  get connected(): boolean {
    return this.client !== undefined;
  }

  async stop(): Promise<void> {
    this.closed = true;
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
    await this.publisher.end().catch(() => {});
    await this.local.stop();
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url });
    client.on("notification", (msg) => {
      const message = decodeMessage(msg.payload ?? "");
      if (message) this.local.deliver(message);
    });
    client.on("error", (err) => {
      this.logger.warn({ err }, "bus listener connection failed; reconnecting");
      this.dropAndReconnect(client);
    });
    client.on("end", () => this.dropAndReconnect(client));
    await client.connect();
    await client.query(`listen ${CHANNEL}`);
    this.client = client;
    this.reconnectDelayMs = 250;
  }

  private dropAndReconnect(client: pg.Client): void {
    if (this.client !== client || this.closed) return;
    this.client = undefined;
    client.end().catch(() => {});
    const retry = () => {
      if (this.closed) return;
      this.connect().then(
        () => {
          this.logger.info("bus listener reconnected; resynchronising from the database");
          this.onResync();
        },
        (err) => {
          this.logger.warn({ err, retryInMs: this.reconnectDelayMs }, "bus listener reconnect failed");
          this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, 10_000);
          setTimeout(retry, this.reconnectDelayMs).unref();
        },
      );
    };
    setTimeout(retry, this.reconnectDelayMs).unref();
  }
}
