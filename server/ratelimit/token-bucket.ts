import type { RateSpec } from "../config/config.js";

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/**
 * Per-key token buckets (per source address, per agent id). Memory is bounded: past
 * `maxKeys` the least recently touched keys are forgotten, which only ever errs towards
 * admitting. A denied call costs one Map lookup, so shedding load stays cheap under a storm.
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();
  /** The limit's fixed name in refusals and metrics (`register_per_source`, …). */
  name = "unnamed";

  constructor(
    private readonly spec: RateSpec,
    private readonly maxKeys = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Sets the limit's name; returns this. */
  named(name: string): this {
    this.name = name;
    return this;
  }

  /**
   * Takes `cost` tokens for `key` (one call, or a batch's items or bytes): 0 when admitted, else
   * milliseconds until that many are available. A cost above the burst is charged as the whole
   * burst, so one maximal request is always admissible from a full bucket.
   */
  take(key: string, cost = 1): number {
    const need = Math.min(cost, this.spec.burst);
    const now = this.now();
    let bucket = this.buckets.get(key);
    if (bucket) {
      this.buckets.delete(key); // re-inserted below: Map order doubles as LRU order
      bucket.tokens = Math.min(this.spec.burst, bucket.tokens + ((now - bucket.updatedAt) / 1000) * this.spec.perSecond);
      bucket.updatedAt = now;
    } else {
      bucket = { tokens: this.spec.burst, updatedAt: now };
      if (this.buckets.size >= this.maxKeys) {
        const oldest = this.buckets.keys().next();
        if (!oldest.done) this.buckets.delete(oldest.value);
      }
    }
    this.buckets.set(key, bucket);
    if (bucket.tokens >= need) {
      bucket.tokens -= need;
      return 0;
    }
    return Math.ceil(((need - bucket.tokens) / this.spec.perSecond) * 1000);
  }

  /** Milliseconds until `key` would be admitted (0 when it would be now), without taking a token. */
  peek(key: string): number {
    const bucket = this.buckets.get(key);
    if (!bucket) return 0;
    const tokens = Math.min(this.spec.burst, bucket.tokens + ((this.now() - bucket.updatedAt) / 1000) * this.spec.perSecond);
    return tokens >= 1 ? 0 : Math.ceil(((1 - tokens) / this.spec.perSecond) * 1000);
  }
}
