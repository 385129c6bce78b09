import { RateLimitedError } from "../errors/errors.js";
import type { TokenBuckets } from "./token-bucket.js";

/** Takes tokens (one, or `cost`) from each bucket for its key, or throws RESOURCE_EXHAUSTED with a retry hint. */
export function admit(what: string, checks: Array<[TokenBuckets, string] | [TokenBuckets, string, number]>): void {
  for (const [buckets, key, cost] of checks) {
    const waitMs = buckets.take(key, cost);
    if (waitMs > 0) {
      throw new RateLimitedError(`${what} rate limit exceeded: retry after ${Math.ceil(waitMs / 1000)} s`, waitMs, buckets.name);
    }
  }
}
