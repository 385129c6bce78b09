import { describe, expect, it } from "vitest";
import { parseBytes, parseDurationMs, parseLabels } from "./values.js";

describe("parseDurationMs", () => {
  it.each([
    ["250ms", 250],
    ["30s", 30_000],
    ["30", 30_000],
    ["1.5m", 90_000],
    ["1h", 3_600_000],
    ["2d", 172_800_000],
    ["0s", 0],
  ])("%s is %d ms", (input, ms) => expect(parseDurationMs(input)).toBe(ms));
  it.each(["", "-1s", "5 minutes", "1w", "1e3s", "9".repeat(400)])("refuses %j", (input) => expect(parseDurationMs(input)).toBeUndefined());
});

describe("parseBytes", () => {
  it("reads binary and decimal units", () => {
    expect(parseBytes("64MiB")).toBe(64 * 1024 ** 2);
    expect(parseBytes("64M")).toBe(64 * 1024 ** 2);
    expect(parseBytes("1GB")).toBe(1e9);
    expect(parseBytes("4096")).toBe(4096);
  });
  it.each(["0", "-5", "12 parsecs", ""])("refuses %j", (input) => expect(parseBytes(input)).toBeUndefined());
});

describe("parseLabels", () => {
  it("parses k=v pairs and bare keys", () => {
    expect(parseLabels("env=prod, region=eu-1,canary")).toEqual({ env: "prod", region: "eu-1", canary: "" });
    expect(parseLabels(undefined)).toEqual({});
  });
  it("names the bad label", () => {
    expect(() => parseLabels("Env=prod")).toThrow(/key "Env"/);
    expect(() => parseLabels(`k=${"v".repeat(257)}`)).toThrow(/value of "k"/);
    expect(() => parseLabels(Array.from({ length: 65 }, (_, i) => `k${i}=v`).join(","))).toThrow(/at most 64/);
  });
});
