import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { globToRegExp } from "./agents.js";
import { readCursor, targetFlag, writeCursor } from "./audit.js";

const dir = mkdtempSync(join(tmpdir(), "agwctl-cursor-"));

describe("the audit export cursor", () => {
  it("starts at 0, round-trips, and is replaced atomically with mode 0600", () => {
    const path = join(dir, "cursor");
    expect(readCursor(path)).toBe(0n);
    writeCursor(path, 1234n);
    expect(readCursor(path)).toBe(1234n);
    expect(readFileSync(path, "utf8")).toBe("1234\n");
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it("refuses a file that is not a cursor", () => {
    const path = join(dir, "junk");
    writeFileSync(path, "yesterday");
    expect(() => readCursor(path)).toThrow(/does not hold an audit cursor/);
  });
});

describe("--name globs", () => {
  it("match whole names with * and ?, and nothing else is special", () => {
    expect(globToRegExp("web-*").test("web-12")).toBe(true);
    expect(globToRegExp("web-*").test("xweb-12")).toBe(false);
    expect(globToRegExp("db-?").test("db-1")).toBe(true);
    expect(globToRegExp("db-?").test("db-12")).toBe(false);
    expect(globToRegExp("a.b").test("axb")).toBe(false);
    expect(globToRegExp("(x)+").test("(x)+")).toBe(true);
  });
});

describe("the audit target flags", () => {
  it("turns --agent into agent:ID and passes a well-formed --target unchanged", () => {
    expect(targetFlag({})).toBe("");
    expect(targetFlag({ agent: "6F1C2D3E-0000-4000-8000-000000000001" })).toBe("agent:6f1c2d3e-0000-4000-8000-000000000001");
    expect(targetFlag({ target: "rollout:6f1c2d3e-0000-4000-8000-000000000001" })).toBe("rollout:6f1c2d3e-0000-4000-8000-000000000001");
  });

  it("refuses both at once, an agent that is not an ID, and a target without a kind", () => {
    expect(() => targetFlag({ agent: "6f1c2d3e-0000-4000-8000-000000000001", target: "agent:x" })).toThrow(/not both/);
    expect(() => targetFlag({ agent: "web-1" })).toThrow(/must be an ID/);
    expect(() => targetFlag({ target: "web-1" })).toThrow(/must look like agent:ID/);
    expect(() => targetFlag({ target: "agent:x y" })).toThrow(/must look like/);
  });
});
