import { createHash, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import forge from "node-forge";
import { sign as ed25519Sign } from "./ed25519.js";
import { certificateBindingTranscript } from "./transcript.js";

/**
 * The agent's TLS key and its certificate request (docs/protocol.md, "Agent certificates"):
 * an ECDSA P-256 key generated on the host (it never leaves it), a PKCS#10 request signed with
 * it, and the binding — the identity key's ed25519 signature over the agent id and SHA-256 of
 * the request's SubjectPublicKeyInfo. node-forge builds the ASN.1 (it cannot sign ECDSA, so
 * node:crypto signs).
 */
export interface CertificateRequest {
  /** PKCS#10, DER. */
  csrDer: Uint8Array;
  bindingSignature: Uint8Array;
  /** The TLS private key, PKCS#8 PEM; keep it in a 0600 file. */
  privateKeyPem: string;
}

const ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2";

/** Generates a fresh P-256 TLS key and a CSR bound to the agent's identity key. */
export function createCertificateRequest(agentId: string, identityPrivateKey: Uint8Array): CertificateRequest {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const spkiDer = publicKey.export({ type: "spki", format: "der" });
  const csrDer = buildCsr(spkiDer, privateKey);
  const bindingSignature = ed25519Sign(identityPrivateKey, certificateBindingTranscript({ agentId, spkiSha256: sha256(spkiDer) }));
  return { csrDer, bindingSignature, privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString() };
}

/** A PKCS#10 request with an empty subject and no attributes, signed by `key` (ECDSA P-256, SHA-256). */
export function buildCsr(spkiDer: Uint8Array, key: KeyObject): Uint8Array {
  const { asn1 } = forge;
  const info = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, asn1.integerToDer(0).getBytes()),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, []),
    asn1.fromDer(binary(spkiDer)),
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, []),
  ]);
  const infoDer = Buffer.from(asn1.toDer(info).getBytes(), "binary");
  // (ed25519 signs without a separate digest; only tests build such a request, to see it refused.)
  const signature = sign(key.asymmetricKeyType === "ed25519" ? null : "sha256", infoDer, key);
  const csr = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    info,
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(ECDSA_WITH_SHA256).getBytes())]),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, `\x00${binary(signature)}`),
  ]);
  return Buffer.from(asn1.toDer(csr).getBytes(), "binary");
}

/** SHA-256 of bytes. */
export function sha256(bytes: Uint8Array): Uint8Array {
  return createHash("sha256").update(bytes).digest();
}

/** DER bytes as the binary string node-forge works on. */
export function binary(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("binary");
}
