import { describe, expect, it } from "vitest";
import { Batcher } from "./batcher.js";

describe("Batcher", () => {
  it("does what is asked while a batch runs in one next batch, merging repeated keys", async () => {
    const batches: Array<Array<[string, number]>> = [];
    let release: (() => void) | undefined;
    const batcher = new Batcher<string, number>(
      async (batch) => {
        batches.push([...batch]);
        if (batches.length === 1) await new Promise<void>((r) => (release = r));
      },
      (a, b) => Math.max(a, b),
    );
    const first = batcher.run([["a", 1]]);
    const during = [batcher.run([["b", 2]]), batcher.run([["c", 3], ["b", 1]]), batcher.run([["b", 5]])];
    await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([[["a", 1]]]);
    release?.();
    await first;
    await Promise.all(during);
    expect(batches).toEqual([[["a", 1]], [["b", 5], ["c", 3]]]);
  });

  it("rejects only the callers of a failed batch, and goes on", async () => {
    let fail = true;
    const batcher = new Batcher<string, true>(async () => {
      if (fail) {
        fail = false;
        throw new Error("down");
      }
    });
    await expect(batcher.run([["a", true]])).rejects.toThrow("down");
    await expect(batcher.run([["b", true]])).resolves.toBeUndefined();
  });
});
