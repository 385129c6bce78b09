import { describe, expect, it } from "vitest";
import {
  AUTH_CONTEXT,
  authTranscript,
  encodeTranscript,
  REGISTER_CONTEXT,
  RELEASE_MANIFEST_CONTEXT,
  registerTranscript,
  releaseManifestTranscript,
} from "./transcript.js";

const toHex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const ascii = (s: string): string => Buffer.from(s, "utf8").toString("hex");
const u32 = (n: number): string => n.toString(16).padStart(8, "0");

const key = new Uint8Array(32).fill(0xaa);
const nonce = new Uint8Array(32).fill(0x55);
const challengeId = "0b7f4c1e-3d2a-4f6b-9c8d-1e2f3a4b5c6d";
const agentId = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b";

describe("encodeTranscript", () => {
  it("length-prefixes the context and every field with u32 big-endian", () => {
    const out = encodeTranscript("ctx", [Uint8Array.of(1, 2), new Uint8Array(), Uint8Array.of(3)]);
    expect(toHex(out)).toBe(`${u32(3)}${ascii("ctx")}${u32(2)}0102${u32(0)}${u32(1)}03`);
  });

  it("keeps field boundaries unambiguous", () => {
    const a = encodeTranscript("c", [Uint8Array.of(1, 2), Uint8Array.of(3)]);
    const b = encodeTranscript("c", [Uint8Array.of(1), Uint8Array.of(2, 3)]);
    expect(toHex(a)).not.toBe(toHex(b));
  });

  it("refuses a non-ASCII or empty context", () => {
    expect(() => encodeTranscript("", [])).toThrow(RangeError);
    expect(() => encodeTranscript("agentgateway/v1/é", [])).toThrow(RangeError);
  });
});

describe("registerTranscript", () => {
  it("is context, token, key, name", () => {
    const token = "agwe_token";
    const out = registerTranscript({ token, publicKey: key, name: "probe-01" });
    expect(toHex(out)).toBe(
      u32(REGISTER_CONTEXT.length) +
        ascii(REGISTER_CONTEXT) +
        u32(token.length) +
        ascii(token) +
        u32(32) +
        toHex(key) +
        u32(8) +
        ascii("probe-01"),
    );
  });

  it("encodes strings as UTF-8 and counts bytes, not UTF-16 units", () => {
    const out = registerTranscript({ token: "t", publicKey: key, name: "zoë" });
    expect(toHex(out.subarray(out.length - 8))).toBe(`${u32(4)}7a6fc3ab`);
  });

  it("refuses a key that is not 32 bytes", () => {
    expect(() =>
      registerTranscript({ token: "t", publicKey: new Uint8Array(31), name: "n" }),
    ).toThrow(RangeError);
  });
});

describe("authTranscript", () => {
  it("is context, challenge id, nonce, agent id, key", () => {
    const out = authTranscript({ challengeId, nonce, agentId, publicKey: key });
    expect(toHex(out)).toBe(
      u32(AUTH_CONTEXT.length) +
        ascii(AUTH_CONTEXT) +
        u32(36) +
        ascii(challengeId) +
        u32(32) +
        toHex(nonce) +
        u32(36) +
        ascii(agentId) +
        u32(32) +
        toHex(key),
    );
  });

  it("signs the lowercase form of the UUIDs whatever case they arrived in", () => {
    const lower = authTranscript({ challengeId, nonce, agentId, publicKey: key });
    const upper = authTranscript({
      challengeId: challengeId.toUpperCase(),
      nonce,
      agentId: agentId.toUpperCase(),
      publicKey: key,
    });
    expect(toHex(upper)).toBe(toHex(lower));
  });

  it("refuses malformed ids and wrong-length nonce or key", () => {
    expect(() =>
      authTranscript({ challengeId: "not-a-uuid", nonce, agentId, publicKey: key }),
    ).toThrow(RangeError);
    expect(() =>
      authTranscript({ challengeId: `{${challengeId}}`, nonce, agentId, publicKey: key }),
    ).toThrow(RangeError);
    expect(() =>
      authTranscript({ challengeId, nonce: new Uint8Array(16), agentId, publicKey: key }),
    ).toThrow(RangeError);
    expect(() =>
      authTranscript({ challengeId, nonce, agentId, publicKey: new Uint8Array(33) }),
    ).toThrow(RangeError);
  });
});

describe("releaseManifestTranscript", () => {
  it("is context then the manifest bytes", () => {
    const out = releaseManifestTranscript(Uint8Array.of(0x0a, 0x01, 0x31));
    expect(toHex(out)).toBe(
      `${u32(RELEASE_MANIFEST_CONTEXT.length)}${ascii(RELEASE_MANIFEST_CONTEXT)}${u32(3)}0a0131`,
    );
  });

  it("differs from every other context for the same bytes", () => {
    const payload = Uint8Array.of(1, 2, 3);
    const contexts = [REGISTER_CONTEXT, AUTH_CONTEXT, RELEASE_MANIFEST_CONTEXT];
    const encoded = new Set(contexts.map((c) => toHex(encodeTranscript(c, [payload]))));
    expect(encoded.size).toBe(3);
  });
});
