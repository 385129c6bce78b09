import { RateLimitedError } from "../errors/errors.js";

/**
 * Load shedding for reconnect storms: at most `limit` units of a kind of database work (a
 * handshake, a stream opening) in flight in this process. Past it a caller is refused at once —
 * RESOURCE_EXHAUSTED with a retry hint jittered over [minMs, minMs + spreadMs] — before it has
 * cost a database round trip or a pool slot, so a fleet that comes back all at once is served
 * at the rate the database sustains and queues nowhere (no unbounded memory, no timeouts that
 * turn into more retries). Agents treat the hint as the floor of their own jittered backoff and
 * never give up (docs/agent.md). `limit` 0 admits everything.
 */
export class Admission {
  private inflight = 0;
  /** Callers refused so far. */
  shed = 0;

  constructor(
    readonly what: string,
    readonly limit: number,
    private readonly retry: { minMs: number; spreadMs: number },
    private readonly random: () => number = Math.random,
  ) {}

  /** Work in flight now. */
  get active(): number {
    return this.inflight;
  }

  /** Takes a slot or throws RESOURCE_EXHAUSTED; call the returned function exactly once when done. */
  enter(): () => void {
    if (this.limit > 0 && this.inflight >= this.limit) {
      this.shed++;
      const retryAfterMs = Math.round(this.retry.minMs + this.random() * this.retry.spreadMs);
      throw new RateLimitedError(`the gateway is busy (${this.what}): retry after ${Math.ceil(retryAfterMs / 1000)} s`, retryAfterMs);
    }
    this.inflight++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.inflight--;
    };
  }

  /** Runs `work` in a slot (or throws RESOURCE_EXHAUSTED without running it). */
  async run<T>(work: () => Promise<T>): Promise<T> {
    const leave = this.enter();
    try {
      return await work();
    } finally {
      leave();
    }
  }
}
