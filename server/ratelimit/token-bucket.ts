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

  constructor(
    private readonly spec: RateSpec,
    private readonly maxKeys = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one token for `key`: 0 when admitted, else milliseconds until a token is available. */
  take(key: string): number {
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
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - bucket.tokens) / this.spec.perSecond) * 1000);
  }

  /** Milliseconds until `key` would be admitted (0 when it would be now), without taking a token. */
  peek(key: string): number {
    const bucket = this.buckets.get(key);
    if (!bucket) return 0;
    const tokens = Math.min(this.spec.burst, bucket.tokens + ((this.now() - bucket.updatedAt) / 1000) * this.spec.perSecond);
    return tokens >= 1 ? 0 : Math.ceil(((1 - tokens) / this.spec.perSecond) * 1000);
  }
}
