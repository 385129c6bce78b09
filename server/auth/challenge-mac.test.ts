import { describe, expect, it } from "vitest";
import { challengeNonce, keyThatTagged, mintChallengeId, parseChallengeId } from "./challenge-mac.js";

const key = { id: 1, secret: Buffer.alloc(32, 1) };
const other = { id: 2, secret: Buffer.alloc(32, 2) };
const agentA = "0b7f4c1e-3d2a-4f6b-9c8d-1e2f3a4b5c6d";
const agentB = "1b7f4c1e-3d2a-4f6b-9c8d-1e2f3a4b5c6d";
const pub = new Uint8Array(32).fill(9);

describe("stateless challenge ids", () => {
  it("are canonical lowercase version-8 UUIDs that carry their expiry", () => {
    const id = mintChallengeId(key, agentA, 1_800_000_000_123);
    expect(id.text).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(parseChallengeId(id.text)?.expiresAtMs).toBe(1_800_000_000_123);
    expect(mintChallengeId(key, agentA, 1_800_000_000_123).text).not.toBe(id.text);
  });

  it("refuse to parse anything else", () => {
    const id = mintChallengeId(key, agentA, Date.now());
    expect(parseChallengeId(id.text.toUpperCase())).toBeUndefined();
    expect(parseChallengeId(crypto.randomUUID())).toBeUndefined();
    expect(parseChallengeId(`${id.text}0`)).toBeUndefined();
    expect(parseChallengeId("")).toBeUndefined();
  });

  it("are tagged for one agent and one key", () => {
    const id = mintChallengeId(key, agentA, Date.now());
    expect(keyThatTagged([other, key], id, agentA)?.id).toBe(1);
    expect(keyThatTagged([key], id, agentB)).toBeUndefined();
    expect(keyThatTagged([other], id, agentA)).toBeUndefined();
    // Any change to the id (here: a later expiry) breaks the tag.
    const moved = parseChallengeId(id.text.replace(/^./, (c) => (c === "f" ? "e" : "f")));
    expect(moved && keyThatTagged([key], moved, agentA)).toBeUndefined();
  });

  it("have a nonce bound to the id, the agent, the key and the MAC key", () => {
    const id = mintChallengeId(key, agentA, Date.now());
    const nonce = Buffer.from(challengeNonce(key, id, agentA, pub));
    expect(nonce).toHaveLength(32);
    expect(Buffer.from(challengeNonce(key, id, agentA, pub))).toEqual(nonce);
    expect(Buffer.from(challengeNonce(key, id, agentB, pub))).not.toEqual(nonce);
    expect(Buffer.from(challengeNonce(key, id, agentA, new Uint8Array(32)))).not.toEqual(nonce);
    expect(Buffer.from(challengeNonce(other, id, agentA, pub))).not.toEqual(nonce);
    expect(Buffer.from(challengeNonce(key, mintChallengeId(key, agentA, Date.now()), agentA, pub))).not.toEqual(nonce);
  });
});
