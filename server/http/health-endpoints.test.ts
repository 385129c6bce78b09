import { describe, expect, it } from "vitest";
import { readinessProbe } from "./health-endpoints.js";

describe("readinessProbe", () => {
  it("shares one check run between concurrent and rapid probes (an unauthenticated flood is not a query flood)", async () => {
    let runs = 0;
    const probe = readinessProbe({
      draining: () => false,
      checks: { database: async () => void runs++ },
      cacheMs: 60_000,
    });
    const reports = await Promise.all(Array.from({ length: 50 }, () => probe()));
    await probe();
    expect(runs).toBe(1);
    expect(reports.every((r) => r.ready)).toBe(true);
    expect(reports[0]).toEqual({ ready: true, checks: { database: "ok", draining: "no" } });
  });

  it("runs the checks again once the cache window has passed", async () => {
    let runs = 0;
    const probe = readinessProbe({ draining: () => false, checks: { a: () => void runs++ }, cacheMs: 0 });
    await probe();
    await probe();
    expect(runs).toBe(2);
  });

  it("answers a failing check with a fixed word, never the error's text, and hands the error to onChange", async () => {
    const seen: unknown[] = [];
    const probe = readinessProbe({
      draining: () => false,
      checks: {
        database: () => {
          throw new Error("password authentication failed for user agw at 10.0.0.5");
        },
        bus: () => "disconnected",
        ok: () => undefined,
      },
      onChange: (ready, failures, errors) => seen.push({ ready, failures, errors }),
    });
    const report = await probe();
    expect(report).toEqual({ ready: false, checks: { database: "failed", bus: "disconnected", ok: "ok", draining: "no" } });
    expect(JSON.stringify(report)).not.toContain("password");
    expect(seen).toHaveLength(1);
    expect((seen[0] as { failures: unknown }).failures).toEqual({ database: "failed", bus: "disconnected" });
    expect(String((seen[0] as { errors: unknown[] }).errors[0])).toContain("password authentication failed");
  });

  it("counts a check that hangs as failed after the timeout", async () => {
    const probe = readinessProbe({ draining: () => false, checks: { database: () => new Promise(() => {}) }, timeoutMs: 20 });
    expect(await probe()).toEqual({ ready: false, checks: { database: "timeout", draining: "no" } });
  });

  it("fails at once while draining, without running the checks, and reports each change once", async () => {
    let draining = false;
    let runs = 0;
    const changes: boolean[] = [];
    const probe = readinessProbe({
      draining: () => draining,
      checks: { database: () => void runs++ },
      cacheMs: 0,
      onChange: (ready) => changes.push(ready),
    });
    await probe();
    await probe();
    draining = true;
    expect(await probe()).toEqual({ ready: false, checks: { draining: "yes" } });
    await probe();
    expect(runs).toBe(2);
    expect(changes).toEqual([true, false]);
  });
});
