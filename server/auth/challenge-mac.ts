import { createHmac, randomFillSync, timingSafeEqual } from "node:crypto";

/**
 * Stateless handshake challenges (docs/protocol.md, "Challenges"). A challenge id is a UUID
 * (RFC 9562 version 8, the vendor-specific layout) that carries its own expiry and a MAC tag:
 *
 *   bytes 0–5   expiry, milliseconds since the Unix epoch, big-endian (48 bits)
 *   bytes 6–11  version nibble 8, variant bits 10, and 42 random bits
 *   bytes 12–15 tag = HMAC-SHA256(key, ID_CONTEXT ‖ bytes 0–11 ‖ agent id)[0..4]
 *
 * and its nonce is HMAC-SHA256(key, NONCE_CONTEXT ‖ id bytes ‖ agent id ‖ identity key). So
 * BeginAuthHandshake stores nothing: CompleteAuthHandshake reads the expiry from the id, checks
 * the tag (the id was minted here, for this agent), recomputes the nonce from the agent's stored
 * key and verifies the signature over the transcript. An id whose expiry was changed has another
 * nonce, so no signature the agent made verifies for it. Single use is recorded when the
 * challenge is answered (used_challenges, server/auth/session-store.ts). The tag is short on
 * purpose: it sorts forged or misdirected ids out before any database work, while the security
 * of the handshake rests on the signature over the 256-bit nonce and on that single-use record.
 */

/** A MAC key (handshake_keys row). */
export interface MacKey {
  id: number;
  secret: Buffer;
}

/** A parsed challenge id. */
export interface ParsedChallengeId {
  /** The canonical lowercase text. */
  text: string;
  bytes: Buffer;
  expiresAtMs: number;
}

const ID_CONTEXT = Buffer.from("agentgateway/challenge-id/v1", "ascii");
const NONCE_CONTEXT = Buffer.from("agentgateway/challenge-nonce/v1", "ascii");
const TAG_BYTES = 4;
const CANONICAL = /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A fresh challenge id for `agentId`, expiring at `expiresAtMs`, tagged with `key`. */
export function mintChallengeId(key: MacKey, agentId: string, expiresAtMs: number): ParsedChallengeId {
  const bytes = Buffer.allocUnsafe(16);
  bytes.writeUIntBE(expiresAtMs, 0, 6);
  randomFillSync(bytes, 6, 6);
  bytes[6] = 0x80 | ((bytes[6] ?? 0) & 0x0f);
  bytes[8] = 0x80 | ((bytes[8] ?? 0) & 0x3f);
  idTag(key, bytes, agentId).copy(bytes, 12, 0, TAG_BYTES);
  return { text: format(bytes), bytes, expiresAtMs };
}

/** The id's fields, or undefined when the text is not a challenge id of this layout. */
export function parseChallengeId(text: string): ParsedChallengeId | undefined {
  if (!CANONICAL.test(text)) return undefined;
  const bytes = Buffer.from(text.replace(/-/g, ""), "hex");
  return { text, bytes, expiresAtMs: bytes.readUIntBE(0, 6) };
}

/** The key among `keys` that tagged this id for `agentId`, or undefined (forged, or another agent's). */
export function keyThatTagged(keys: readonly MacKey[], id: ParsedChallengeId, agentId: string): MacKey | undefined {
  const tag = id.bytes.subarray(12, 16);
  return keys.find((key) => timingSafeEqual(idTag(key, id.bytes, agentId).subarray(0, TAG_BYTES), tag));
}

/** The 32-byte nonce of the challenge for this agent and key. */
export function challengeNonce(key: MacKey, id: ParsedChallengeId, agentId: string, identityPublicKey: Uint8Array): Uint8Array {
  const mac = createHmac("sha256", key.secret).update(NONCE_CONTEXT).update(id.bytes).update(agentId, "utf8").update(identityPublicKey).digest();
  return new Uint8Array(mac.buffer, mac.byteOffset, mac.length);
}

function idTag(key: MacKey, bytes: Buffer, agentId: string): Buffer {
  return createHmac("sha256", key.secret).update(ID_CONTEXT).update(bytes.subarray(0, 12)).update(agentId, "utf8").digest();
}

function format(bytes: Buffer): string {
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
