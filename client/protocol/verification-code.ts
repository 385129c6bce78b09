/**
 * The short code an agent prints at registration and an operator compares before approving it
 * (docs/protocol.md, "Verification code"). It is derived from the identity key alone, so a key
 * substituted in transit shows a different code.
 */
import { createHash } from "node:crypto";

/** Domain separation prefix hashed before the key. */
export const VERIFICATION_CODE_CONTEXT = "agentgateway/v1/verification-code";

// Crockford base32: no I, L, O, U, so what an operator reads aloud is hard to mistype.
const CROCKFORD_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** Derives the "XXXX-XXXX" code (40 bits of SHA-256, Crockford base32) of a raw 32-byte key. */
export function verificationCode(publicKey: Uint8Array): string {
  if (publicKey.length !== 32) {
    throw new RangeError(`publicKey must be 32 bytes, got ${publicKey.length}`);
  }
  const digest = createHash("sha256")
    .update(VERIFICATION_CODE_CONTEXT, "utf8")
    .update(publicKey)
    .digest();
  // 40 bits fit a double exactly; 8 groups of 5 bits, most significant first.
  let bits = 0;
  for (let i = 0; i < 5; i++) bits = bits * 256 + (digest[i] ?? 0);
  let code = "";
  for (let shift = 35; shift >= 0; shift -= 5) {
    code += CROCKFORD_ALPHABET[Math.floor(bits / 2 ** shift) % 32];
  }
  return `${code.slice(0, 4)}-${code.slice(4)}`;
}

/**
 * Canonicalizes what an operator typed (case, dashes, spaces, I/L for 1, O for 0) so it can be
 * compared with `normalizeVerificationCode(verificationCode(key))`.
 */
export function normalizeVerificationCode(input: string): string {
  return input.toUpperCase().replace(/[\s-]/g, "").replace(/[IL]/g, "1").replace(/O/g, "0");
}
