import { RateLimitedError } from "../errors/errors.js";
import type { TokenBuckets } from "./token-bucket.js";

/** Takes a token from each bucket for its key, or throws RESOURCE_EXHAUSTED with a retry hint. */
export function admit(what: string, checks: Array<[TokenBuckets, string]>): void {
  for (const [buckets, key] of checks) {
    const waitMs = buckets.take(key);
    if (waitMs > 0) {
      throw new RateLimitedError(`${what} rate limit exceeded: retry after ${Math.ceil(waitMs / 1000)} s`, waitMs);
    }
  }
}
