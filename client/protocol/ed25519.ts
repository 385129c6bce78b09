/**
 * ed25519 for the gateway, the agent and the CLI.
 *
 * Signing uses @noble/ed25519 (pure JS, runs anywhere the agent runs); verification uses
 * node:crypto, which is about 12x faster here and accepts the same deterministic signatures.
 */
import { createHash, createPublicKey, verify as cryptoVerify } from "node:crypto";
import type { KeyObject } from "node:crypto";
import * as ed from "@noble/ed25519";

// noble's synchronous API needs a SHA-512 hook; node:crypto's is the fastest one available.
ed.hashes.sha512 = (message: Uint8Array): Uint8Array<ArrayBuffer> =>
  new Uint8Array(createHash("sha512").update(message).digest());

/** Length in bytes of a raw ed25519 public key. */
export const PUBLIC_KEY_LENGTH = 32;
/** Length in bytes of an ed25519 private key seed (RFC 8032), the form this module uses. */
export const PRIVATE_KEY_LENGTH = 32;
/** Length in bytes of an ed25519 signature. */
export const SIGNATURE_LENGTH = 64;

// DER header of an SPKI structure holding a raw ed25519 key (RFC 8410): the 32 key bytes follow.
const SPKI_ED25519_PREFIX = Uint8Array.from([
  0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
]);

// The gateway verifies the same agent keys over and over (every handshake); importing a key
// costs about as much as a verification, so recently seen keys are kept. Map iteration order
// is insertion order, which makes delete-and-reinsert a cheap LRU.
const KEY_CACHE_LIMIT = 10_000;
const keyCache = new Map<string, KeyObject>();

/** A fresh ed25519 key pair: a 32-byte RFC 8032 private key seed and its raw public key. */
export interface Ed25519KeyPair {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

/** Generates a new ed25519 key pair from the system CSPRNG. */
export function generateKeyPair(): Ed25519KeyPair {
  const { secretKey, publicKey } = ed.keygen();
  return { privateKey: secretKey, publicKey };
}

/** Derives the raw 32-byte public key from a 32-byte private key seed. */
export function publicKeyFromPrivate(privateKey: Uint8Array): Uint8Array {
  return ed.getPublicKey(privateKey);
}

/** Signs message with a 32-byte private key seed; deterministic (RFC 8032), 64 bytes. */
export function sign(privateKey: Uint8Array, message: Uint8Array): Uint8Array {
  return ed.sign(message, privateKey);
}

/** Verifies an ed25519 signature by a raw 32-byte key; false (never a throw) for any bad input. */
export function verifyEd25519(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (signature.length !== SIGNATURE_LENGTH) return false;
  const key = importPublicKey(publicKey);
  if (key === undefined) return false;
  try {
    return cryptoVerify(null, message, key, signature);
  } catch {
    return false;
  }
}

/**
 * Whether a raw key is one an honest key generator can produce: 32 bytes, canonical, not of
 * small order. Use it to refuse such keys where they are registered (e.g. release keys).
 */
export function isUsablePublicKey(publicKey: Uint8Array): boolean {
  return (
    publicKey.length === PUBLIC_KEY_LENGTH && isCanonical(publicKey) && !hasSmallOrder(publicKey)
  );
}

function importPublicKey(publicKey: Uint8Array): KeyObject | undefined {
  if (publicKey.length !== PUBLIC_KEY_LENGTH) return undefined;
  // latin1 maps each byte to one char: a collision-free cache key without copying to hex.
  const id = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString(
    "latin1",
  );
  const cached = keyCache.get(id);
  if (cached !== undefined) {
    keyCache.delete(id);
    keyCache.set(id, cached);
    return cached;
  }
  // OpenSSL verifies cofactorless and accepts small-order keys, for which anyone can forge a
  // signature over any message (e.g. the identity point with R = identity, S = 0). Refuse them.
  if (!isCanonical(publicKey) || hasSmallOrder(publicKey)) return undefined;
  let key: KeyObject;
  try {
    const der = new Uint8Array(SPKI_ED25519_PREFIX.length + PUBLIC_KEY_LENGTH);
    der.set(SPKI_ED25519_PREFIX, 0);
    der.set(publicKey, SPKI_ED25519_PREFIX.length);
    key = createPublicKey({ key: Buffer.from(der.buffer), format: "der", type: "spki" });
  } catch {
    return undefined;
  }
  if (keyCache.size >= KEY_CACHE_LIMIT) {
    const oldest = keyCache.keys().next();
    if (oldest.done !== true) keyCache.delete(oldest.value);
  }
  keyCache.set(id, key);
  return key;
}

// The y coordinate is little-endian in bytes 0..31 with the x sign in the top bit; an encoding
// is canonical when y < p = 2^255 - 19, i.e. not in [p, 2^255).
function isCanonical(publicKey: Uint8Array): boolean {
  if (((publicKey[31] ?? 0) & 0x7f) !== 0x7f) return true;
  for (let i = 30; i > 0; i--) {
    if (publicKey[i] !== 0xff) return true;
  }
  return (publicKey[0] ?? 0) < 0xed;
}

// Canonical encodings (sign bit cleared) of the y coordinates of the eight points of order
// 1, 2, 4 and 8: y = 1, y = p - 1, y = 0 and the two y of the order-8 points. The same list
// libsodium refuses; ed25519.test.ts checks each entry against noble's isSmallOrder().
const SMALL_ORDER_Y = [
  "0100000000000000000000000000000000000000000000000000000000000000",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "0000000000000000000000000000000000000000000000000000000000000000",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
].map((hex) => Uint8Array.from(Buffer.from(hex, "hex")));

function hasSmallOrder(publicKey: Uint8Array): boolean {
  outer: for (const y of SMALL_ORDER_Y) {
    for (let i = 0; i < 31; i++) {
      if (publicKey[i] !== y[i]) continue outer;
    }
    if (((publicKey[31] ?? 0) & 0x7f) === y[31]) return true;
  }
  return false;
}
