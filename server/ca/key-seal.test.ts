import { describe, expect, it } from "vitest";
import { KeySealer, SealError } from "./key-seal.js";

describe("KeySealer", () => {
  const secret = "0123456789abcdef0123456789abcdef";
  const key = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);

  it("opens what it sealed, with a fresh salt and iv each time", () => {
    const sealer = new KeySealer(secret);
    const a = sealer.seal(key, "fp1");
    const b = sealer.seal(key, "fp1");
    expect(a).not.toBe(b);
    expect([...sealer.open(a, "fp1")]).toEqual([...key]);
  });

  it("refuses another secret, another certificate's fingerprint and a flipped byte", () => {
    const sealed = new KeySealer(secret).seal(key, "fp1");
    expect(() => new KeySealer(`${secret}x`).open(sealed, "fp1")).toThrow(SealError);
    expect(() => new KeySealer(secret).open(sealed, "fp2")).toThrow(SealError);
    const raw = Buffer.from(sealed.slice("agwca1.".length), "base64url");
    raw[30] = (raw[30] ?? 0) ^ 1;
    expect(() => new KeySealer(secret).open(`agwca1.${raw.toString("base64url")}`, "fp1")).toThrow(SealError);
  });

  it("refuses a secret shorter than 256 bits", () => {
    expect(() => new KeySealer("short")).toThrow(/at least 32 bytes/);
  });
});
