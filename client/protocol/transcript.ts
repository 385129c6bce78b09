/**
 * Domain-separated signing transcripts (byte-exact spec: docs/protocol.md, "Transcripts").
 *
 * transcript = u32be(len(context)) || context || for each field: u32be(len(field)) || field
 *
 * The context is ASCII, string fields are UTF-8. Every field is length-prefixed so that no two
 * different field lists can encode to the same bytes, and the context comes first so that a
 * signature made for one purpose (say, registration) can never be replayed as another (auth).
 */

/** Context of the proof of possession sent with Register. */
export const REGISTER_CONTEXT = "agentgateway/v1/register";

/** Context of the signature sent with CompleteAuthHandshake. */
export const AUTH_CONTEXT = "agentgateway/v1/auth";

/** Context of the signature over a serialized ReleaseManifest. */
export const RELEASE_MANIFEST_CONTEXT = "agentgateway/v1/release-manifest";

/** Context of the identity key's signature binding a TLS key to the agent (IssueAgentCertificate). */
export const CERT_BINDING_CONTEXT = "agentgateway/v1/cert-binding";

/** Raw ed25519 public keys and auth nonces are exactly this many bytes. */
const KEY_LENGTH = 32;
const NONCE_LENGTH = 32;
const MAX_FIELD_LENGTH = 0xffff_ffff;

// Accepts any letter case on input; the transcript always carries the lowercase form, because
// that is what the gateway returns and what a client in another language is told to sign.
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const utf8 = new TextEncoder();

/** Encodes a context and fields as a transcript; prefer the purpose-specific builders below. */
export function encodeTranscript(context: string, fields: readonly Uint8Array[]): Uint8Array {
  // The context is a fixed constant, so ASCII is a programming guarantee, not input handling.
  if (!/^[\x20-\x7e]+$/.test(context)) {
    throw new RangeError("transcript context must be non-empty printable ASCII");
  }
  const parts = [utf8.encode(context), ...fields];
  let total = 0;
  for (const part of parts) {
    if (part.length > MAX_FIELD_LENGTH) {
      throw new RangeError("transcript field longer than 2^32-1 bytes");
    }
    total += 4 + part.length;
  }
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const part of parts) {
    view.setUint32(offset, part.length, false);
    out.set(part, offset + 4);
    offset += 4 + part.length;
  }
  return out;
}

/** Inputs of the register transcript. */
export interface RegisterTranscriptInput {
  /** The enrollment token exactly as sent in RegisterRequest.enrollment_token. */
  token: string;
  /** The raw 32-byte ed25519 identity public key. */
  publicKey: Uint8Array;
  /** The agent name exactly as sent in RegisterRequest.name. */
  name: string;
}

/** Builds the bytes the identity key signs as proof of possession in Register. */
export function registerTranscript({
  token,
  publicKey,
  name,
}: RegisterTranscriptInput): Uint8Array {
  requireLength("publicKey", publicKey, KEY_LENGTH);
  return encodeTranscript(REGISTER_CONTEXT, [utf8.encode(token), publicKey, utf8.encode(name)]);
}

/** Inputs of the auth transcript. */
export interface AuthTranscriptInput {
  /** The challenge id (UUID) from BeginAuthHandshake; signed in lowercase form. */
  challengeId: string;
  /** The 32-byte nonce from BeginAuthHandshake. */
  nonce: Uint8Array;
  /** The agent id (UUID) returned by Register; signed in lowercase form. */
  agentId: string;
  /** The raw 32-byte ed25519 identity public key bound to the agent. */
  publicKey: Uint8Array;
}

/** Builds the bytes the identity key signs in CompleteAuthHandshake. */
export function authTranscript({
  challengeId,
  nonce,
  agentId,
  publicKey,
}: AuthTranscriptInput): Uint8Array {
  requireLength("nonce", nonce, NONCE_LENGTH);
  requireLength("publicKey", publicKey, KEY_LENGTH);
  return encodeTranscript(AUTH_CONTEXT, [
    utf8.encode(canonicalUuid("challengeId", challengeId)),
    nonce,
    utf8.encode(canonicalUuid("agentId", agentId)),
    publicKey,
  ]);
}

/** Builds the bytes a release key signs for a serialized ReleaseManifest. */
export function releaseManifestTranscript(manifestBytes: Uint8Array): Uint8Array {
  return encodeTranscript(RELEASE_MANIFEST_CONTEXT, [manifestBytes]);
}

/** Inputs of the certificate binding transcript. */
export interface CertificateBindingTranscriptInput {
  /** The agent id (UUID); signed in lowercase form. */
  agentId: string;
  /** SHA-256 of the DER SubjectPublicKeyInfo inside the CSR (32 bytes). */
  spkiSha256: Uint8Array;
}

/** Builds the bytes the identity key signs to bind a CSR's TLS key to the agent. */
export function certificateBindingTranscript({ agentId, spkiSha256 }: CertificateBindingTranscriptInput): Uint8Array {
  requireLength("spkiSha256", spkiSha256, 32);
  return encodeTranscript(CERT_BINDING_CONTEXT, [utf8.encode(canonicalUuid("agentId", agentId)), spkiSha256]);
}

function requireLength(field: string, value: Uint8Array, length: number): void {
  if (value.length !== length) {
    throw new RangeError(`${field} must be ${length} bytes, got ${value.length}`);
  }
}

function canonicalUuid(field: string, value: string): string {
  if (!UUID_PATTERN.test(value)) {
    throw new RangeError(`${field} must be a UUID in 8-4-4-4-12 hex form`);
  }
  return value.toLowerCase();
}
