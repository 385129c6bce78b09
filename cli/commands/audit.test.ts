import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { globToRegExp } from "./agents.js";
import { readCursor, writeCursor } from "./audit.js";

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
