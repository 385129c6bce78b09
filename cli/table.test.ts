import { describe, expect, it } from "vitest";
import { formatLabels, paint, relativeTime, renderFields, renderTable, truncate } from "./table.js";

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching the escape codes is the point
const ANSI = /\x1b\[\d+m/g;
const headers = ["ID", "NAME", "STATE", "LABELS"];
const rows = [
  ["6f1c2d3e-0a1b-4c2d-8e3f-445566778899", "web-1", { text: "ACTIVE", style: "good" as const }, "role=web,site=ams,rack=12,owner=platform-team"],
  ["7a2b3c4d-0a1b-4c2d-8e3f-445566778899", "database-primary-eu-west", { text: "PENDING_APPROVAL", style: "warn" as const }, "-"],
];

describe("tables", () => {
  it("align columns two spaces apart without a width limit", () => {
    const out = renderTable(headers, rows, { colour: false }).split("\n");
    expect(out[0]).toBe(`ID${" ".repeat(36)}NAME${" ".repeat(22)}STATE${" ".repeat(13)}LABELS`);
    expect(out[1]?.indexOf("web-1")).toBe(out[0]?.indexOf("NAME"));
    expect(out[2]?.indexOf("PENDING_APPROVAL")).toBe(out[0]?.indexOf("STATE"));
  });

  it("fit the terminal by cutting the widest shrinkable columns, never fixed ones", () => {
    const out = renderTable(headers, rows, { colour: false, width: 80, fixed: [0, 2] }).split("\n");
    for (const line of out) expect([...line].length).toBeLessThanOrEqual(80);
    expect(out[1]).toContain("6f1c2d3e-0a1b-4c2d-8e3f-445566778899");
    expect(out[2]).toContain("PENDING_APPROVAL");
    expect(out.join("\n")).toContain("…");
  });

  it("do not count colour codes towards widths", () => {
    const plain = renderTable(headers, rows, { colour: false });
    const coloured = renderTable(headers, rows, { colour: true });
    expect(coloured).toMatch(ANSI);
    expect(coloured.replace(ANSI, "")).toBe(plain);
  });

  it("truncate with an ellipsis", () => {
    expect(truncate("abcdef", 4)).toBe("abc…");
    expect(truncate("abc", 4)).toBe("abc");
  });

  it("render key/value views aligned, coloured only when asked", () => {
    expect(
      renderFields(
        [
          ["id", "x"],
          ["verification code", { text: "7KQ2-M9XD", style: "bold" }],
        ],
        false,
      ),
    ).toBe("id:                x\nverification code: 7KQ2-M9XD");
    expect(paint("x", "bad", false)).toBe("x");
    expect(paint("x", "bad", true)).toBe("\x1b[31mx\x1b[39m");
  });
});

describe("relative times", () => {
  const now = new Date("2026-05-01T12:00:00Z");
  it.each([
    [0, "just now"],
    [-12_000, "12s ago"],
    [-5 * 60_000, "5m ago"],
    [-3 * 3_600_000, "3h ago"],
    [-4 * 86_400_000, "4d ago"],
    [4 * 60_000, "in 4m"],
  ])("%s ms is %s", (delta, text) => {
    expect(relativeTime(new Date(now.getTime() + delta), now)).toBe(text);
  });
  it("is a dash without a time", () => {
    expect(relativeTime(undefined, now)).toBe("-");
  });
});

describe("labels", () => {
  it("are sorted k=v pairs, or a dash", () => {
    expect(formatLabels({ site: "ams", role: "web", flag: "" })).toBe("flag,role=web,site=ams");
    expect(formatLabels({})).toBe("-");
  });
});
