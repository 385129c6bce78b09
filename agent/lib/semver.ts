/**
 * Semantic version precedence (semver.org 2.0.0, section 11), for the agent's "only newer
 * releases" rule. A leading "v" is accepted ("v1.5.0"); build metadata ("+build.7") is parsed
 * but has no precedence, as the specification says.
 */
export interface SemVer {
  major: bigint;
  minor: bigint;
  patch: bigint;
  /** Pre-release identifiers: numbers compare numerically, others as ASCII. */
  prerelease: Array<bigint | string>;
}

const IDENT = "(?:0|[1-9]\\d*|\\d*[A-Za-z-][0-9A-Za-z-]*)";
const SEMVER = new RegExp(`^v?(0|[1-9]\\d*)\\.(0|[1-9]\\d*)\\.(0|[1-9]\\d*)(?:-(${IDENT}(?:\\.${IDENT})*))?(?:\\+[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*)?$`);

/** Parses a semantic version; undefined if `value` is not one (or longer than 64 characters). */
export function parseSemver(value: string): SemVer | undefined {
  if (value.length > 64) return undefined;
  const m = SEMVER.exec(value);
  if (!m?.[1] || !m[2] || !m[3]) return undefined;
  const prerelease = m[4] ? m[4].split(".").map((id) => (/^\d+$/.test(id) ? BigInt(id) : id)) : [];
  return { major: BigInt(m[1]), minor: BigInt(m[2]), patch: BigInt(m[3]), prerelease };
}

/** -1, 0 or 1 as `a` has lower, equal or higher precedence than `b`. */
export function compareSemver(a: SemVer, b: SemVer): -1 | 0 | 1 {
  for (const key of ["major", "minor", "patch"] as const) {
    if (a[key] !== b[key]) return a[key] < b[key] ? -1 : 1;
  }
  // A pre-release is older than the release itself (1.0.0-rc.1 < 1.0.0).
  if (a.prerelease.length === 0 || b.prerelease.length === 0) {
    return a.prerelease.length === b.prerelease.length ? 0 : a.prerelease.length === 0 ? 1 : -1;
  }
  const n = Math.min(a.prerelease.length, b.prerelease.length);
  for (let i = 0; i < n; i++) {
    const x = a.prerelease[i] as bigint | string;
    const y = b.prerelease[i] as bigint | string;
    if (x === y) continue;
    // Numeric identifiers are lower than alphanumeric ones.
    if (typeof x === "bigint" && typeof y === "string") return -1;
    if (typeof x === "string" && typeof y === "bigint") return 1;
    return x < y ? -1 : 1;
  }
  return a.prerelease.length === b.prerelease.length ? 0 : a.prerelease.length < b.prerelease.length ? -1 : 1;
}
