/**
 * Bearer secrets: enrollment tokens, session tokens, operator API keys and system keys
 * (docs/protocol.md, "Secrets"). A secret is `<prefix>_<43 base64url chars>` encoding 32
 * random bytes. Only its SHA-256 is stored, so a database leak yields nothing usable; the
 * prefix makes a leaked secret recognizable to secret scanners and to humans.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** The kinds of secret the gateway issues. */
export type SecretKind = "enrollment" | "session" | "apiKey" | "systemKey";

/** The readable prefix of each kind of secret. */
export const SECRET_PREFIXES: Readonly<Record<SecretKind, string>> = {
  enrollment: "agwe",
  session: "agws",
  apiKey: "agwk",
  /** The provider's system key (TenantService); not an operator key of any tenant. */
  systemKey: "agwp",
};

/** A freshly minted secret: show `secret` once, store `hash` and `displayPrefix`. */
export interface NewSecret {
  /** The full secret, e.g. "agwe_…". Never log or store it. */
  secret: string;
  /** SHA-256 of the UTF-8 secret string: what the database keeps. */
  hash: Uint8Array;
  /** The fingerprint shown in listings, e.g. "agwe:9f86d081" (secretFingerprint). */
  displayPrefix: string;
}

const RANDOM_BYTES = 32;
const FINGERPRINT_HEX_DIGITS = 8;

// 32 bytes are 256 bits, 43 base64url chars carry 258: the last char holds 4 data bits and
// two zero bits, so only 16 of the 64 symbols can end a canonical encoding.
const SECRET_BODY = "[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]";
const SECRET_PATTERNS: Readonly<Record<SecretKind, RegExp>> = {
  enrollment: new RegExp(`^${SECRET_PREFIXES.enrollment}_${SECRET_BODY}$`),
  session: new RegExp(`^${SECRET_PREFIXES.session}_${SECRET_BODY}$`),
  apiKey: new RegExp(`^${SECRET_PREFIXES.apiKey}_${SECRET_BODY}$`),
  systemKey: new RegExp(`^${SECRET_PREFIXES.systemKey}_${SECRET_BODY}$`),
};

/** Mints a new secret of the given kind from 32 bytes of the system CSPRNG. */
export function newSecret(kind: SecretKind): NewSecret {
  const prefix = SECRET_PREFIXES[kind];
  const body = randomBytes(RANDOM_BYTES).toString("base64url");
  const secret = `${prefix}_${body}`;
  const hash = hashSecret(secret);
  return { secret, hash, displayPrefix: fingerprintOfHash(prefix, hash) };
}

/**
 * What listings show to tell secrets apart: the kind prefix, ":" and the first 8 hex digits of
 * SHA-256(secret), e.g. "agwk:9f86d081". It reveals no character of the secret (a bootstrap key
 * may be any string an operator chose), and whoever holds a secret can compute it to find
 * their key in a list (`agwctl` does).
 */
export function secretFingerprint(kind: SecretKind, secret: string): string {
  return fingerprintOfHash(SECRET_PREFIXES[kind], hashSecret(secret));
}

function fingerprintOfHash(prefix: string, hash: Uint8Array): string {
  return `${prefix}:${Buffer.from(hash).toString("hex").slice(0, FINGERPRINT_HEX_DIGITS)}`;
}

/** SHA-256 of the UTF-8 secret string, the only form in which secrets are stored or looked up. */
export function hashSecret(secret: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(secret, "utf8").digest());
}

/** Whether a string has the exact shape of a secret of this kind; refuse garbage before any lookup. */
export function parseSecret(secret: string, kind: SecretKind): boolean {
  return SECRET_PATTERNS[kind].test(secret);
}

/** Compares two byte strings in time independent of their contents (lengths may leak). */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}
