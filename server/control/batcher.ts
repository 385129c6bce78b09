/**
 * Coalesces work on keys: what callers ask for while a batch runs is done by the next batch,
 * in one call of `work`, so a burst (a reconnect storm's stream openings) costs a round trip
 * per batch instead of one per caller. One batch is in flight at a time. A key asked for twice
 * before its batch starts keeps the value `merge` chooses.
 */
export class Batcher<K, V> {
  private queued = new Map<K, V>();
  private waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  private running = false;

  constructor(
    private readonly work: (batch: Map<K, V>) => Promise<void>,
    private readonly merge: (a: V, b: V) => V = (_, b) => b,
  ) {}

  /** Resolves once a batch holding these entries has been done (rejects if that batch failed). */
  run(entries: Iterable<readonly [K, V]>): Promise<void> {
    for (const [key, value] of entries) {
      const before = this.queued.get(key);
      this.queued.set(key, before === undefined ? value : this.merge(before, value));
    }
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.next();
    });
  }

  private next(): void {
    if (this.running || this.waiters.length === 0) return;
    this.running = true;
    const batch = this.queued;
    const waiters = this.waiters;
    this.queued = new Map();
    this.waiters = [];
    const done = batch.size === 0 ? Promise.resolve() : this.work(batch);
    done
      .then(
        () => {
          for (const w of waiters) w.resolve();
        },
        (err: unknown) => {
          for (const w of waiters) w.reject(err);
        },
      )
      .finally(() => {
        this.running = false;
        this.next();
      });
  }
}
