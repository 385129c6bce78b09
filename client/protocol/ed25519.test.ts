import { createPrivateKey, sign as cryptoSign, randomBytes } from "node:crypto";
import * as ed from "@noble/ed25519";
import { describe, expect, it } from "vitest";
import {
  generateKeyPair,
  isUsablePublicKey,
  publicKeyFromPrivate,
  sign,
  verifyEd25519,
} from "./ed25519.js";

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, "hex"));
const message = new TextEncoder().encode("agentgateway test message");

// Eight torsion points, as canonical encodings with and without the x sign bit where defined.
const SMALL_ORDER_ENCODINGS = [
  "0100000000000000000000000000000000000000000000000000000000000000",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0000000000000000000000000000000000000000000000000000000000000080",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
];

describe("ed25519", () => {
  it("verifies a noble signature with node:crypto", () => {
    const { privateKey, publicKey } = generateKeyPair();
    expect(privateKey).toHaveLength(32);
    expect(publicKey).toHaveLength(32);
    expect(publicKeyFromPrivate(privateKey)).toEqual(publicKey);
    const signature = sign(privateKey, message);
    expect(signature).toHaveLength(64);
    expect(verifyEd25519(publicKey, message, signature)).toBe(true);
  });

  it("produces the same bytes as node:crypto signing (deterministic signatures)", () => {
    const seed = new Uint8Array(32).fill(7);
    const pkcs8 = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
    const nodeKey = createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" });
    expect(sign(seed, message)).toEqual(new Uint8Array(cryptoSign(null, message, nodeKey)));
  });

  it("matches RFC 8032 test 1", () => {
    const seed = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    const publicKey = hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    const signature = hex(
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    );
    expect(publicKeyFromPrivate(seed)).toEqual(publicKey);
    expect(sign(seed, new Uint8Array())).toEqual(signature);
    expect(verifyEd25519(publicKey, new Uint8Array(), signature)).toBe(true);
  });

  it("rejects a flipped bit in the signature, the message or the key", () => {
    const { privateKey, publicKey } = generateKeyPair();
    const signature = sign(privateKey, message);
    for (let bit = 0; bit < 512; bit += 37) {
      const bad = signature.slice();
      bad[bit >> 3] = (bad[bit >> 3] ?? 0) ^ (1 << (bit & 7));
      expect(verifyEd25519(publicKey, message, bad)).toBe(false);
    }
    const badMessage = message.slice();
    badMessage[0] = (badMessage[0] ?? 0) ^ 1;
    expect(verifyEd25519(publicKey, badMessage, signature)).toBe(false);
    const badKey = publicKey.slice();
    badKey[5] = (badKey[5] ?? 0) ^ 0x10;
    expect(verifyEd25519(badKey, message, signature)).toBe(false);
  });

  it("returns false instead of throwing on malformed keys and signatures", () => {
    const { privateKey, publicKey } = generateKeyPair();
    const signature = sign(privateKey, message);
    expect(verifyEd25519(publicKey.subarray(0, 31), message, signature)).toBe(false);
    expect(verifyEd25519(new Uint8Array(33), message, signature)).toBe(false);
    expect(verifyEd25519(new Uint8Array(), message, signature)).toBe(false);
    expect(verifyEd25519(publicKey, message, signature.subarray(0, 63))).toBe(false);
    expect(verifyEd25519(publicKey, message, new Uint8Array(65))).toBe(false);
    expect(verifyEd25519(publicKey, message, new Uint8Array(64))).toBe(false);
    // Not a point on the curve (no square root for x).
    const offCurve = hex("0200000000000000000000000000000000000000000000000000000000000000");
    expect(() => ed.Point.fromBytes(offCurve)).toThrow();
    expect(verifyEd25519(offCurve, message, signature)).toBe(false);
  });

  it("refuses a malleated signature (S + L), as RFC 8032 requires", () => {
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    const { privateKey, publicKey } = generateKeyPair();
    const signature = sign(privateKey, message);
    let s = 0n;
    for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(signature[32 + i] ?? 0);
    const malleated = signature.slice();
    let v = s + L; // still fits 256 bits because S < L < 2^253
    for (let i = 0; i < 32; i++) {
      malleated[32 + i] = Number(v & 0xffn);
      v >>= 8n;
    }
    expect(verifyEd25519(publicKey, message, signature)).toBe(true);
    expect(verifyEd25519(publicKey, message, malleated)).toBe(false);
  });

  it("works with keys that are views into a larger buffer (cache keys by content)", () => {
    const { privateKey, publicKey } = generateKeyPair();
    const signature = sign(privateKey, message);
    const backing = new Uint8Array(100);
    backing.set(publicKey, 50);
    expect(verifyEd25519(backing.subarray(50, 82), message, signature)).toBe(true);
    expect(verifyEd25519(backing.subarray(49, 81), message, signature)).toBe(false);
    // Same key again, now from the cache.
    expect(verifyEd25519(publicKey, message, signature)).toBe(true);
  });

  it("refuses small-order keys, for which node:crypto would accept a forged signature", () => {
    // R = identity point, S = 0: valid for every message under a small-order key, cofactorless.
    const forged = new Uint8Array(64);
    forged[0] = 1;
    for (const encoding of SMALL_ORDER_ENCODINGS) {
      const key = hex(encoding);
      expect(ed.Point.fromBytes(key).isSmallOrder()).toBe(true);
      expect(isUsablePublicKey(key)).toBe(false);
      expect(verifyEd25519(key, message, forged)).toBe(false);
    }
  });

  it("refuses non-canonical key encodings (y >= p)", () => {
    for (const first of ["ed", "ee", "ef", "ff"]) {
      const key = hex(`${first}${"ff".repeat(30)}7f`);
      expect(isUsablePublicKey(key)).toBe(false);
    }
    expect(isUsablePublicKey(generateKeyPair().publicKey)).toBe(true);
    expect(isUsablePublicKey(new Uint8Array(31))).toBe(false);
  });

  it("stays correct after more distinct keys than the key cache holds", () => {
    const pairs = Array.from({ length: 3 }, () => generateKeyPair());
    const signatures = pairs.map((p) => sign(p.privateKey, message));
    const check = (): void => {
      pairs.forEach((p, i) => {
        expect(verifyEd25519(p.publicKey, message, signatures[i] ?? new Uint8Array())).toBe(true);
        // Keys never answer for each other, whether cached or not.
        const other = signatures[(i + 1) % pairs.length] ?? new Uint8Array();
        expect(verifyEd25519(p.publicKey, message, other)).toBe(false);
      });
    };
    check();
    // Random bytes are mostly valid-looking keys; each one that imports takes a cache slot.
    const junkSignature = new Uint8Array(64);
    for (let i = 0; i < 10_050; i++) {
      verifyEd25519(randomBytes(32), message, junkSignature);
    }
    check();
  });
});
