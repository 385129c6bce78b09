import type { EventRecord } from "./outbox.js";

/** Where accepted events go: resolves once they are durable. */
export type EventSink = (events: EventRecord[]) => Promise<void>;

interface Pending {
  record: EventRecord;
  done: (err?: unknown) => void;
}

/**
 * Coalesces events arriving close together into one outbox append (one fsync) — a busy
 * producer would otherwise cost a file and an fsync per line.
 */
export class EventBatcher {
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  /** Flushes `lingerMs` after the first event of a batch, or at once at `maxBatch` events. */
  constructor(
    private readonly sink: EventSink,
    private readonly lingerMs: number,
    private readonly maxBatch: number,
  ) {}

  /** Resolves once the record is durable (rejects if storing it failed). */
  add(record: EventRecord): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ record, done: (err) => (err ? reject(err) : resolve()) });
      if (this.pending.length >= this.maxBatch) this.flushSoon(0);
      else this.flushSoon(this.lingerMs);
    });
  }

  /** Stores what is pending now. */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    this.pending = [];
    this.flushing = this.flushing.then(async () => {
      if (batch.length === 0) return;
      try {
        await this.sink(batch.map((p) => p.record));
        for (const p of batch) p.done();
      } catch (err) {
        for (const p of batch) p.done(err);
      }
    });
    return this.flushing;
  }

  private flushSoon(ms: number): void {
    if (this.timer && ms > 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.flush(), ms);
  }
}
