import { describe, expect, it } from "vitest";
import { Backoff, DEFAULT_BACKOFF } from "./backoff.js";

describe("Backoff (exponential, full jitter)", () => {
  it("draws each delay from [floor, min(max, initial * 2^n)]", () => {
    const low = new Backoff(DEFAULT_BACKOFF, () => 0);
    const high = new Backoff(DEFAULT_BACKOFF, () => 0.999999);
    const ceilings = [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000];
    for (const ceiling of ceilings) {
      expect(low.next()).toBe(100);
      expect(high.next()).toBeCloseTo(ceiling, -1);
    }
  });

  it("keeps every draw of real randomness inside the window, spread over all of it", () => {
    for (let attempt = 0; attempt < 8; attempt++) {
      const ceiling = Math.min(30_000, 1000 * 2 ** attempt);
      const draws: number[] = [];
      const b = new Backoff();
      for (let k = 0; k < attempt; k++) b.next();
      expect(b.window()).toEqual({ floorMs: 100, ceilingMs: ceiling });
      for (let i = 0; i < 2000; i++) {
        b.reset();
        for (let k = 0; k < attempt; k++) b.next();
        draws.push(b.next());
      }
      expect(Math.min(...draws)).toBeGreaterThanOrEqual(100);
      expect(Math.max(...draws)).toBeLessThanOrEqual(ceiling);
      // Full jitter: the whole window is used, not a narrow band around the ceiling.
      const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
      expect(mean).toBeGreaterThan((100 + ceiling) / 2 - ceiling * 0.05);
      expect(mean).toBeLessThan((100 + ceiling) / 2 + ceiling * 0.05);
      expect(Math.min(...draws)).toBeLessThan(100 + ceiling * 0.05);
      expect(Math.max(...draws)).toBeGreaterThan(ceiling * 0.95);
    }
  });

  it("treats a server hint as a floor and still jitters above it", () => {
    const b = new Backoff(DEFAULT_BACKOFF, () => 0.5);
    expect(b.next(5000)).toBe(5000 + 100 + 0.5 * 900);
    expect(b.next(5000)).toBe(5000 + 100 + 0.5 * 1900);
  });

  it("starts over after reset (a connection that stayed healthy)", () => {
    const b = new Backoff(DEFAULT_BACKOFF, () => 0.999999);
    for (let i = 0; i < 10; i++) b.next();
    expect(b.attempt).toBe(10);
    b.reset();
    expect(b.attempt).toBe(0);
    expect(b.next()).toBeLessThanOrEqual(1000);
  });

  it("honours custom bounds and refuses nonsense", () => {
    const b = new Backoff({ initialMs: 50, maxMs: 200, floorMs: 10 }, () => 0.999999);
    expect([b.next(), b.next(), b.next(), b.next()].map(Math.round)).toEqual([50, 100, 200, 200]);
    expect(() => new Backoff({ initialMs: 0, maxMs: 1, floorMs: 0 })).toThrow(RangeError);
    expect(() => new Backoff({ initialMs: 10, maxMs: 5, floorMs: 0 })).toThrow(RangeError);
  });

  it("never overflows, however many failures", () => {
    const b = new Backoff(DEFAULT_BACKOFF, () => 0.999999);
    for (let i = 0; i < 5000; i++) expect(b.next()).toBeLessThanOrEqual(30_000);
  });
});
