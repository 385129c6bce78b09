import { createHash, createPublicKey, type KeyObject, randomBytes, sign, verify, X509Certificate } from "node:crypto";
import forge from "node-forge";
import { binary } from "../../client/protocol/csr.js";

/**
 * X.509 for the internal CA. node-forge builds and parses the ASN.1 (names, validity,
 * extensions); node:crypto signs and verifies, because forge signs only RSA and the CA's keys
 * are ECDSA P-256 (small, fast, and what every TLS stack accepts). docs/security.md, "mTLS".
 */
const { asn1 } = forge;

const OID = {
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  sha256WithRsa: "1.2.840.113549.1.1.11",
  subjectKeyIdentifier: "2.5.29.14",
} as const;

/** Largest CSR accepted (DER bytes); a P-256 request is ~200 bytes, an RSA-4096 one ~1.2 KB. */
export const MAX_CSR_BYTES = 4096;

/** What a validated CSR yields: only its public key (nothing else in it is used). */
export interface ValidatedCsr {
  spkiDer: Buffer;
  publicKey: KeyObject;
}

/** A CSR that is refused; the message says why (safe to show the agent). */
export class CsrError extends Error {
  override name = "CsrError";
}

/**
 * Parses and checks a PKCS#10 request strictly: DER only (re-encoding must give the same bytes),
 * version 0, an ECDSA P-256 or RSA 2048–4096 key, a signature algorithm that fits the key
 * (ecdsa-with-SHA256, sha256WithRSAEncryption) and a valid self-signature. Subject and
 * attributes (extension requests) are ignored: the certificate's contents come from the gateway.
 */
export function validateCsr(der: Uint8Array): ValidatedCsr {
  if (der.length === 0 || der.length > MAX_CSR_BYTES) throw new CsrError(`CSR must be 1-${MAX_CSR_BYTES} bytes of DER, got ${der.length}`);
  let root: forge.asn1.Asn1;
  try {
    // (@types/node-forge lists only the boolean form of the options.)
    const options = { strict: true, parseAllBytes: true, decodeBitStrings: false } as unknown as boolean;
    root = asn1.fromDer(binary(der), options);
  } catch {
    throw new CsrError("CSR is not DER-encoded ASN.1");
  }
  if (asn1.toDer(root).getBytes() !== binary(der)) throw new CsrError("CSR is not in canonical DER form");
  const [info, algorithm, signature] = sequence(root, 3, "CertificationRequest");
  const fields = sequence(info, 4, "CertificationRequestInfo");
  const [version, , spki] = fields;
  if (!version || version.type !== asn1.Type.INTEGER || asn1.derToInteger(version.value as string) !== 0) throw new CsrError("CSR version must be 0 (v1)");
  if (!spki) throw new CsrError("CSR carries no public key");
  const spkiDer = Buffer.from(asn1.toDer(spki).getBytes(), "binary");
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: spkiDer, format: "der", type: "spki" });
  } catch {
    throw new CsrError("CSR public key cannot be read");
  }
  const expected = expectedAlgorithm(publicKey);
  const [algOid, ...algParams] = sequence(algorithm, -1, "signatureAlgorithm");
  if (!algOid || algOid.type !== asn1.Type.OID || asn1.derToOid(algOid.value as string) !== expected.oid) {
    throw new CsrError(`CSR signature algorithm must be ${expected.name} for its key`);
  }
  if (expected.oid === OID.ecdsaWithSha256 && algParams.length > 0) throw new CsrError("ecdsa-with-SHA256 takes no parameters");
  if (!signature || signature.type !== asn1.Type.BITSTRING || typeof signature.value !== "string" || signature.value.charCodeAt(0) !== 0) {
    throw new CsrError("CSR signature is not a whole-byte BIT STRING");
  }
  const infoDer = Buffer.from(asn1.toDer(info as forge.asn1.Asn1).getBytes(), "binary");
  const sig = Buffer.from(signature.value.slice(1), "binary");
  let ok = false;
  try {
    ok = verify("sha256", infoDer, publicKey, sig);
  } catch {
    ok = false;
  }
  if (!ok) throw new CsrError("CSR signature does not verify with the key it carries");
  return { spkiDer, publicKey };
}

function expectedAlgorithm(key: KeyObject): { oid: string; name: string } {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === "ec") {
    if (details.namedCurve !== "prime256v1") throw new CsrError("CSR key must be ECDSA P-256 or RSA 2048-4096 bits");
    return { oid: OID.ecdsaWithSha256, name: "ecdsa-with-SHA256" };
  }
  if (key.asymmetricKeyType === "rsa") {
    const bits = details.modulusLength ?? 0;
    if (bits < 2048 || bits > 4096 || details.publicExponent !== 65537n) throw new CsrError("CSR RSA key must have 2048-4096 bits and exponent 65537");
    return { oid: OID.sha256WithRsa, name: "sha256WithRSAEncryption" };
  }
  throw new CsrError("CSR key must be ECDSA P-256 or RSA 2048-4096 bits");
}

function sequence(node: forge.asn1.Asn1 | undefined, length: number, what: string): forge.asn1.Asn1[] {
  if (!node || node.type !== asn1.Type.SEQUENCE || !Array.isArray(node.value) || (length >= 0 && node.value.length !== length)) {
    throw new CsrError(`CSR ${what} is malformed`);
  }
  return node.value;
}

/** A name as forge takes it, e.g. [{ shortName: "CN", value: "…" }]. */
export type Name = forge.pki.CertificateField[];

/** What to put in a certificate; the gateway decides all of it. */
export interface CertificateProfile {
  subject: Name;
  /** The issuer's subject, DER exactly as in its certificate (chain building compares bytes); omitted = self-signed. */
  issuerSubjectDer?: Uint8Array;
  /** DER SubjectPublicKeyInfo of the subject's key. */
  spkiDer: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  /** forge extension objects (basicConstraints, keyUsage, extKeyUsage, subjectAltName, …). */
  extensions: Array<Record<string, unknown>>;
  /** SHA-256/160 key id of the issuer's key (absent for a self-signed root: its own). */
  authorityKeyId?: Buffer;
  /** The issuer's private key (ECDSA P-256, or RSA for an imported root). */
  signingKey: KeyObject;
}

/**
 * Builds and signs a certificate: forge encodes the TBSCertificate, whose key and signature
 * algorithm fields are then replaced (forge knows only RSA keys) and node:crypto signs it.
 */
export function buildCertificate(profile: CertificateProfile): Buffer {
  const cert = forge.pki.createCertificate();
  // A placeholder RSA key lets forge encode the rest; its SPKI is replaced below.
  cert.publicKey = forge.pki.setRsaPublicKey(new forge.jsbn.BigInteger("3"), new forge.jsbn.BigInteger("65537"));
  cert.serialNumber = serialNumber();
  // Replaced below with the real algorithm; forge needs some OID to encode the TBS.
  cert.siginfo.algorithmOid = OID.ecdsaWithSha256;
  cert.validity.notBefore = profile.notBefore;
  cert.validity.notAfter = profile.notAfter;
  cert.setSubject(profile.subject);
  cert.setIssuer(profile.subject);
  const keyId = keyIdentifier(profile.spkiDer);
  cert.setExtensions([
    ...profile.extensions,
    { id: OID.subjectKeyIdentifier, value: asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, binary(keyId)) },
    { name: "authorityKeyIdentifier", keyIdentifier: binary(profile.authorityKeyId ?? keyId) },
  ]);
  // getTBSCertificate is public in node-forge but missing from @types/node-forge.
  const tbs = (forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }).getTBSCertificate(cert);
  // ECDSA takes no parameters (RFC 5758); RSA PKCS#1 v1.5 takes NULL (RFC 4055), for imported RSA roots.
  const rsa = profile.signingKey.asymmetricKeyType === "rsa";
  const algorithm = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(rsa ? OID.sha256WithRsa : OID.ecdsaWithSha256).getBytes()),
    ...(rsa ? [asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, "")] : []),
  ]);
  const fields = tbs.value as forge.asn1.Asn1[];
  fields[2] = algorithm;
  fields[6] = asn1.fromDer(binary(profile.spkiDer));
  if (profile.issuerSubjectDer) fields[3] = asn1.fromDer(binary(profile.issuerSubjectDer));
  const tbsDer = Buffer.from(asn1.toDer(tbs).getBytes(), "binary");
  const signature = sign("sha256", tbsDer, profile.signingKey);
  const whole = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    tbs,
    algorithm,
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, `\x00${binary(signature)}`),
  ]);
  return Buffer.from(asn1.toDer(whole).getBytes(), "binary");
}

/** The key identifier the CA uses: the first 160 bits of SHA-256 over the SPKI (RFC 7093 §2). */
export function keyIdentifier(spkiDer: Uint8Array): Buffer {
  return createHash("sha256").update(spkiDer).digest().subarray(0, 20);
}

/** 128 random bits, positive (RFC 5280 §4.1.2.2: at most 20 octets, non-negative). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f | 0x01;
  return bytes.toString("hex");
}

/** Lower-case hex SHA-256 of a certificate's DER: what `--ca-pin` takes. */
export function fingerprintOf(der: Uint8Array): string {
  return createHash("sha256").update(der).digest("hex");
}

/** PEM of a DER certificate. */
export function certificatePem(der: Uint8Array): string {
  return new X509Certificate(der).toString();
}

/** The subject Name of a certificate, DER, exactly as encoded in it. */
export function subjectDerOf(certificateDer: Uint8Array): Buffer {
  const tbs = (asn1.fromDer(binary(certificateDer)).value as forge.asn1.Asn1[])[0];
  const fields = (tbs?.value ?? []) as forge.asn1.Asn1[];
  // v3 certificates start with the [0] EXPLICIT version; subject is the 5th field after it.
  const offset = fields[0]?.tagClass === asn1.Class.CONTEXT_SPECIFIC ? 1 : 0;
  const subject = fields[offset + 4];
  if (!subject) throw new Error("certificate has no subject");
  return Buffer.from(asn1.toDer(subject).getBytes(), "binary");
}
