import { describe, expect, it } from "vitest";
import { TokenBuckets } from "./token-bucket.js";

describe("TokenBuckets", () => {
  it("admits a burst, then refuses with a retry hint until tokens refill", () => {
    let now = 1_000_000;
    const buckets = new TokenBuckets({ perSecond: 2, burst: 3 }, 10, () => now);
    expect([buckets.take("a"), buckets.take("a"), buckets.take("a")]).toEqual([0, 0, 0]);
    expect(buckets.take("a")).toBe(500);
    now += 500;
    expect(buckets.take("a")).toBe(0);
    expect(buckets.take("a")).toBe(500);
  });

  it("keeps keys apart so one noisy source does not starve another", () => {
    const buckets = new TokenBuckets({ perSecond: 1, burst: 1 }, 10, () => 0);
    expect(buckets.take("noisy")).toBe(0);
    expect(buckets.take("noisy")).toBeGreaterThan(0);
    expect(buckets.take("quiet")).toBe(0);
  });

  it("forgets the least recently used key when full", () => {
    const buckets = new TokenBuckets({ perSecond: 1, burst: 1 }, 2, () => 0);
    buckets.take("a");
    buckets.take("b");
    buckets.take("c"); // evicts "a"
    expect(buckets.take("a")).toBe(0);
    expect(buckets.take("c")).toBeGreaterThan(0);
  });
});
