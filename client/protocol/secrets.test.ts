import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { SecretKind } from "./secrets.js";
import {
  constantTimeEqual,
  hashSecret,
  newSecret,
  parseSecret,
  SECRET_PREFIXES,
  secretFingerprint,
} from "./secrets.js";

const kinds: SecretKind[] = ["enrollment", "session", "apiKey"];

describe("newSecret", () => {
  it("mints <prefix>_<43 base64url chars> with its SHA-256 and display prefix", () => {
    for (const kind of kinds) {
      const { secret, hash, displayPrefix } = newSecret(kind);
      const prefix = SECRET_PREFIXES[kind];
      expect(secret).toMatch(new RegExp(`^${prefix}_[A-Za-z0-9_-]{43}$`));
      expect(Buffer.from(secret.slice(prefix.length + 1), "base64url")).toHaveLength(32);
      expect(Buffer.from(hash)).toEqual(createHash("sha256").update(secret).digest());
      expect(displayPrefix).toBe(`${prefix}:${Buffer.from(hash).toString("hex").slice(0, 8)}`);
      expect(secretFingerprint(kind, secret)).toBe(displayPrefix);
      // No run of 4+ characters of the secret's random part appears in what is shown.
      const body = secret.slice(prefix.length + 1);
      for (let i = 0; i + 4 <= body.length; i++) expect(displayPrefix).not.toContain(body.slice(i, i + 4));
      expect(parseSecret(secret, kind)).toBe(true);
    }
  });

  it("uses the agwe/agws/agwk prefixes", () => {
    expect(newSecret("enrollment").secret.startsWith("agwe_")).toBe(true);
    expect(newSecret("session").secret.startsWith("agws_")).toBe(true);
    expect(newSecret("apiKey").secret.startsWith("agwk_")).toBe(true);
  });

  it("never repeats", () => {
    const seen = new Set(Array.from({ length: 1000 }, () => newSecret("session").secret));
    expect(seen.size).toBe(1000);
  });
});

describe("parseSecret", () => {
  const body = "A".repeat(42);

  it("accepts only the right prefix and a canonical 43-char body", () => {
    expect(parseSecret(`agwe_${body}A`, "enrollment")).toBe(true);
    expect(parseSecret(`agwe_${body}A`, "session")).toBe(false);
    expect(parseSecret(`agws_${body}A`, "session")).toBe(true);
    expect(parseSecret(`agwk_${body}w`, "apiKey")).toBe(true);
  });

  it("refuses garbage before any lookup", () => {
    const bad = [
      "",
      "agwe_",
      `agwe_${body}`, // 42 chars
      `agwe_${body}AA`, // 44 chars
      `agwe_${body}A=`, // padding
      `agwe_${body.slice(1)}+A`, // base64, not base64url
      `AGWE_${body}A`,
      `agwe-${body}A`,
      ` agwe_${body}A`,
      `agwe_${body}A\n`,
      `agwe_${body}B`, // non-zero padding bits: not a canonical encoding of 32 bytes
      `Bearer agwe_${body}A`,
    ];
    for (const s of bad) expect(parseSecret(s, "enrollment"), JSON.stringify(s)).toBe(false);
  });

  it("accepts every secret newSecret can produce (last-char rule)", () => {
    for (let i = 0; i < 2000; i++) {
      expect(parseSecret(newSecret("apiKey").secret, "apiKey")).toBe(true);
    }
  });
});

describe("hashSecret and constantTimeEqual", () => {
  it("hashes the UTF-8 string", () => {
    expect(Buffer.from(hashSecret("agws_x")).toString("hex")).toBe(
      createHash("sha256").update("agws_x", "utf8").digest("hex"),
    );
  });

  it("compares by content and refuses different lengths without throwing", () => {
    const a = hashSecret("a");
    expect(constantTimeEqual(a, hashSecret("a"))).toBe(true);
    expect(constantTimeEqual(a, hashSecret("b"))).toBe(false);
    expect(constantTimeEqual(a, a.subarray(0, 31))).toBe(false);
    expect(constantTimeEqual(new Uint8Array(), new Uint8Array())).toBe(true);
  });
});
