import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";

/**
 * Seals CA private keys at rest: AES-256-GCM under a key derived (HKDF-SHA256, a fresh random
 * salt per sealed key) from the secret in AGW_CA_KEY / AGW_CA_KEY_FILE, with the certificate's
 * SHA-256 fingerprint as additional data, so a sealed key cannot be moved to another row. Not
 * forge's PKCS#8 encryption: its defaults (PBES2 with few iterations, 3DES or AES-CBC without
 * integrity) are weaker than an AEAD under a high-entropy key. Format (docs/security.md):
 * "agwca1." base64url(salt[16] || iv[12] || ciphertext || tag[16]).
 */
export class KeySealer {
  readonly #secret: Buffer;

  /** `secret` must carry at least 256 bits: 32+ bytes (e.g. `openssl rand -base64 32`). */
  constructor(secret: string | Buffer) {
    const bytes = Buffer.isBuffer(secret) ? secret : Buffer.from(secret.trim(), "utf8");
    if (bytes.length < 32) throw new RangeError("the CA key must be at least 32 bytes (e.g. openssl rand -base64 32)");
    this.#secret = bytes;
  }

  /** Seals a private key (PKCS#8 DER) bound to the certificate fingerprint. */
  seal(pkcs8Der: Uint8Array, fingerprint: string): string {
    const salt = randomBytes(16);
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.#key(salt), iv);
    cipher.setAAD(Buffer.from(fingerprint, "ascii"));
    const body = Buffer.concat([cipher.update(pkcs8Der), cipher.final()]);
    return `${PREFIX}${Buffer.concat([salt, iv, body, cipher.getAuthTag()]).toString("base64url")}`;
  }

  /** Opens a sealed key; throws SealError for a wrong key, another row's key or a damaged value. */
  open(sealed: string, fingerprint: string): Buffer {
    if (!sealed.startsWith(PREFIX)) throw new SealError("sealed CA key has an unknown format");
    const raw = Buffer.from(sealed.slice(PREFIX.length), "base64url");
    if (raw.length < 16 + 12 + 16 + 1) throw new SealError("sealed CA key is truncated");
    const salt = raw.subarray(0, 16);
    const iv = raw.subarray(16, 28);
    const tag = raw.subarray(raw.length - 16);
    const decipher = createDecipheriv("aes-256-gcm", this.#key(salt), iv);
    decipher.setAAD(Buffer.from(fingerprint, "ascii"));
    decipher.setAuthTag(tag);
    try {
      return Buffer.concat([decipher.update(raw.subarray(28, raw.length - 16)), decipher.final()]);
    } catch {
      throw new SealError("cannot open the CA's private key: AGW_CA_KEY is not the key it was sealed with");
    }
  }

  #key(salt: Buffer): Buffer {
    return Buffer.from(hkdfSync("sha256", this.#secret, salt, INFO, 32));
  }
}

/** A sealed key that does not open. */
export class SealError extends Error {
  override name = "SealError";
}

const PREFIX = "agwca1.";
const INFO = Buffer.from("agentgateway/v1/ca-key-seal", "ascii");
