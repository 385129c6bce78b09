import { describe, expect, it } from "vitest";
import { CliError, EXIT } from "./errors.js";
import { collectPages, durationFlag, idArg, intFlag, labelsFlag, timeFlag } from "./flags.js";

const usageOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(EXIT.USAGE);
    return (err as CliError).message;
  }
  throw new Error("expected a usage error");
};

describe("flag values", () => {
  it("checks numbers, durations, labels, times and IDs, naming the flag", () => {
    expect(intFlag("--uses", "10", 0, 100)).toBe(10);
    expect(intFlag("--uses", undefined, 1, 100)).toBe(1);
    expect(usageOf(() => intFlag("--uses", "-1", 0, 100))).toMatch(/--uses must be a whole number/);
    expect(usageOf(() => intFlag("--uses", "101", 0, 100))).toMatch(/from 0 to 100/);
    expect(durationFlag("--ttl", "2h")).toBe(7_200_000);
    expect(usageOf(() => durationFlag("--ttl", "soon"))).toMatch(/--ttl must be a duration/);
    expect(labelsFlag("--labels", ["site=ams,role=web", "rack=12"])).toEqual({ site: "ams", role: "web", rack: "12" });
    expect(usageOf(() => labelsFlag("--labels", "Bad=1"))).toMatch(/--labels: key "Bad"/);
    const now = new Date("2026-05-01T12:00:00Z");
    expect(timeFlag("--since", "10m", now)).toEqual(new Date("2026-05-01T11:50:00Z"));
    expect(timeFlag("--since", "2026-04-30T00:00:00Z", now)).toEqual(new Date("2026-04-30T00:00:00Z"));
    expect(usageOf(() => timeFlag("--since", "yesterday", now))).toMatch(/--since must be/);
    expect(idArg("agent ID", "6F1C2D3E-0A1B-4C2D-8E3F-445566778899")).toBe("6f1c2d3e-0a1b-4c2d-8e3f-445566778899");
    expect(usageOf(() => idArg("agent ID", "web-1"))).toMatch(/agent ID must be an ID/);
  });
});

describe("paging", () => {
  const pages = (n: number, size: number) => async (token: string, pageSize: number) => {
    const start = Number(token || 0);
    const count = Math.min(pageSize, size, n - start);
    const items = Array.from({ length: Math.max(0, count) }, (_, i) => start + i);
    const next = start + count < n ? String(start + count) : "";
    return { items, next };
  };

  it("follows page tokens to the end with no limit", async () => {
    const { items, next } = await collectPages(pages(25, 10), 0, 10);
    expect(items).toEqual(Array.from({ length: 25 }, (_, i) => i));
    expect(next).toBe("");
  });

  it("stops at the limit and says where it stopped", async () => {
    const { items, next } = await collectPages(pages(25, 10), 12, 10);
    expect(items).toHaveLength(12);
    expect(next).toBe("12");
  });

  it("counts only kept items towards the limit", async () => {
    const { items } = await collectPages(pages(100, 10), 5, 10, (n) => n % 7 === 0);
    expect(items).toEqual([0, 7, 14, 21, 28]);
  });
});
