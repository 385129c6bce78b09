import { describe, expect, it } from "vitest";
import { compareSemver, parseSemver, type SemVer } from "./semver.js";

const v = (s: string): SemVer => {
  const parsed = parseSemver(s);
  if (!parsed) throw new Error(`not a semver: ${s}`);
  return parsed;
};

describe("compareSemver", () => {
  it("orders the precedence example of semver.org (section 11)", () => {
    const chain = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"];
    for (let i = 0; i < chain.length - 1; i++) {
      expect(compareSemver(v(chain[i] as string), v(chain[i + 1] as string)), `${chain[i]} < ${chain[i + 1]}`).toBe(-1);
      expect(compareSemver(v(chain[i + 1] as string), v(chain[i] as string))).toBe(1);
    }
  });

  it("compares numbers as numbers, not as strings", () => {
    expect(compareSemver(v("1.9.0"), v("1.10.0"))).toBe(-1);
    expect(compareSemver(v("2.0.0"), v("1.99.99"))).toBe(1);
    expect(compareSemver(v("1.0.10"), v("1.0.9"))).toBe(1);
    expect(compareSemver(v("99999999999999999999.0.0"), v("99999999999999999998.0.0"))).toBe(1);
  });

  it("ignores build metadata and a leading v", () => {
    expect(compareSemver(v("1.5.0+build.1"), v("1.5.0+build.2"))).toBe(0);
    expect(compareSemver(v("v1.5.0"), v("1.5.0"))).toBe(0);
  });
});

describe("parseSemver", () => {
  it("refuses what is not a semantic version", () => {
    for (const bad of ["1.0", "1", "01.0.0", "1.0.0-", "1.0.0-01", "latest", "1.0.0.0", " 1.0.0", "1.0.0+", `1.0.0-${"a".repeat(64)}`]) {
      expect(parseSemver(bad), bad).toBeUndefined();
    }
  });
});
