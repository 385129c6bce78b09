import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { generateKeyPair } from "./ed25519.js";
import { normalizeVerificationCode, verificationCode } from "./verification-code.js";

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

// An independent bit-by-bit reference: read 40 bits MSB first, 5 at a time.
function reference(publicKey: Uint8Array): string {
  const digest = createHash("sha256")
    .update(Buffer.from("agentgateway/v1/verification-code", "ascii"))
    .update(publicKey)
    .digest();
  const bits = [...digest.subarray(0, 5)].map((b) => b.toString(2).padStart(8, "0")).join("");
  let code = "";
  for (let i = 0; i < 40; i += 5) code += ALPHABET[Number.parseInt(bits.slice(i, i + 5), 2)];
  return `${code.slice(0, 4)}-${code.slice(4)}`;
}

describe("verificationCode", () => {
  it("has the XXXX-XXXX Crockford shape and matches a bitwise reference", () => {
    for (let i = 0; i < 50; i++) {
      const { publicKey } = generateKeyPair();
      const code = verificationCode(publicKey);
      expect(code).toMatch(/^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/);
      expect(code).toBe(reference(publicKey));
    }
  });

  it("refuses a key that is not 32 bytes", () => {
    expect(() => verificationCode(new Uint8Array(31))).toThrow(RangeError);
  });
});

describe("normalizeVerificationCode", () => {
  it("accepts what operators actually type", () => {
    const canonical = normalizeVerificationCode("7KQ2-M9XD");
    expect(canonical).toBe("7KQ2M9XD");
    expect(normalizeVerificationCode("7kq2m9xd")).toBe(canonical);
    expect(normalizeVerificationCode(" 7kq2 - m9xd ")).toBe(canonical);
    expect(normalizeVerificationCode("o1l1-iOIL")).toBe("01111011");
  });

  it("makes a code equal to its own normalized form", () => {
    const code = verificationCode(generateKeyPair().publicKey);
    expect(normalizeVerificationCode(code)).toBe(code.replace("-", ""));
  });
});
