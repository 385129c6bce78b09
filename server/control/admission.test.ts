import { describe, expect, it } from "vitest";
import { RateLimitedError } from "../errors/errors.js";
import { Admission } from "./admission.js";

describe("Admission", () => {
  it("refuses past the limit with a jittered hint, before running the work, and admits again once a slot is free", async () => {
    let r = 0;
    const draws = [0, 0.5, 1];
    const admission = new Admission("handshakes", 2, { minMs: 1000, spreadMs: 4000 }, () => draws[r++ % draws.length] ?? 0);
    const a = admission.enter();
    const b = admission.enter();
    const hints: number[] = [];
    let ran = false;
    for (let i = 0; i < 3; i++) {
      try {
        await admission.run(async () => {
          ran = true;
        });
      } catch (err) {
        expect(err).toBeInstanceOf(RateLimitedError);
        hints.push((err as RateLimitedError).retryAfterMs ?? -1);
      }
    }
    expect(ran).toBe(false);
    expect(hints).toEqual([1000, 3000, 5000]);
    expect(admission.shed).toBe(3);
    a();
    a(); // leaving twice frees one slot only
    expect(admission.active).toBe(1);
    await admission.run(async () => {
      ran = true;
    });
    expect(ran).toBe(true);
    b();
    expect(admission.active).toBe(0);
  });

  it("admits everything with limit 0", () => {
    const admission = new Admission("streams", 0, { minMs: 1000, spreadMs: 0 });
    for (let i = 0; i < 1000; i++) admission.enter();
    expect(admission.active).toBe(1000);
  });
});
