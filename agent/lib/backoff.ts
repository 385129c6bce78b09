/**
 * Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And
 * Jitter"): the n-th consecutive failure waits a uniformly random time in
 * [floor, min(max, initial * 2^n)]. Full jitter spreads a fleet that failed at the same
 * instant (a gateway restart) over the whole window instead of moving the spike; the small
 * floor keeps a run of unlucky draws from becoming a tight loop.
 */
export interface BackoffOptions {
  /** Ceiling of the first window, ms (default 1 s). */
  initialMs: number;
  /** Largest window, ms (default 30 s). */
  maxMs: number;
  /** No wait is shorter than this, ms (default 100 ms). */
  floorMs: number;
}

/** Defaults: 1 s doubling to a 30 s cap, never under 100 ms. */
export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 30_000, floorMs: 100 };

/** Consecutive-failure counter that turns failures into jittered delays. */
export class Backoff {
  private failures = 0;

  constructor(
    readonly options: BackoffOptions = DEFAULT_BACKOFF,
    private readonly random: () => number = Math.random,
  ) {
    if (!(options.initialMs > 0 && options.maxMs >= options.initialMs && options.floorMs >= 0)) {
      throw new RangeError("backoff needs 0 < initial <= max and floor >= 0");
    }
  }

  /** How many failures in a row have been counted since the last reset. */
  get attempt(): number {
    return this.failures;
  }

  /** The window the next delay is drawn from: [floor, ceiling]. */
  window(): { floorMs: number; ceilingMs: number } {
    // 2^n overflows to Infinity long after it passed any sane cap; min() handles that.
    const ceilingMs = Math.min(this.options.maxMs, this.options.initialMs * 2 ** Math.min(this.failures, 60));
    return { floorMs: Math.min(this.options.floorMs, ceilingMs), ceilingMs };
  }

  /**
   * Counts a failure and returns how long to wait before the next attempt. A server hint
   * (GoAway reconnect_after, a RESOURCE_EXHAUSTED retry-after) is a floor: the jittered delay
   * is added on top of it, so a fleet told "1 s" does not come back in the same millisecond.
   */
  next(hintMs = 0): number {
    const { floorMs, ceilingMs } = this.window();
    this.failures++;
    const jittered = floorMs + this.random() * (ceilingMs - floorMs);
    return Math.round(Math.max(0, hintMs) + jittered);
  }

  /** Forgets the failures: call it once a connection has stayed healthy for a while. */
  reset(): void {
    this.failures = 0;
  }
}

/** Waits `ms`, or less if `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
