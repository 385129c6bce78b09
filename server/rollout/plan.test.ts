import { describe, expect, it } from "vitest";
import { DEFAULT_WAVES, planWaves, stableBucket, type WaveSpecInput } from "./plan.js";

const fleet = Array.from({ length: 400 }, (_, i) => ({ id: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`, labels: { ring: i % 10 === 0 ? "canary" : "main" }, agentVersion: "1.0.0" }));

describe("planWaves", () => {
  it("puts every agent in exactly one wave, roughly by the default percentages, reproducibly", () => {
    const plan = planWaves(fleet, DEFAULT_WAVES, "2.0.0");
    const all = plan.waves.flatMap((w) => w.members);
    expect(new Set(all).size).toBe(fleet.length);
    const [canary, early] = plan.waves.map((w) => w.members.length);
    expect(canary).toBeGreaterThan(5);
    expect(canary).toBeLessThan(40);
    expect(early).toBeGreaterThan(40);
    expect(planWaves([...fleet].reverse(), DEFAULT_WAVES, "2.0.0")).toEqual(plan);
  });

  it("skips agents already on the target version", () => {
    const mixed = fleet.slice(0, 10).map((a, i) => ({ ...a, agentVersion: i < 3 ? "2.0.0" : "1.0.0" }));
    const plan = planWaves(mixed, DEFAULT_WAVES, "2.0.0");
    expect(plan.alreadyOnTarget).toHaveLength(3);
    expect(plan.waves.flatMap((w) => w.members)).toHaveLength(7);
  });

  it("fills label waves first-come, and sends the unassigned remainder to the last wave", () => {
    const specs: WaveSpecInput[] = [
      { name: "canary", cumulativePercent: 0, labelSelector: { ring: "canary" }, failureBudget: 0, verifyWindowMs: 1000 },
      { name: "rest", cumulativePercent: 100, labelSelector: {}, failureBudget: 0, verifyWindowMs: 1000 },
    ];
    const plan = planWaves(fleet, specs, "2.0.0");
    expect(plan.waves[0]?.members).toHaveLength(40);
    expect(plan.waves[1]?.members).toHaveLength(360);
  });

  it("hashes ids into 0..99 stably", () => {
    expect(stableBucket("abc")).toBe(stableBucket("abc"));
    for (const a of fleet) expect(stableBucket(a.id)).toBeGreaterThanOrEqual(0);
    for (const a of fleet) expect(stableBucket(a.id)).toBeLessThan(100);
  });
});
