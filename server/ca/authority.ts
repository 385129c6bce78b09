import { createPrivateKey, generateKeyPairSync, type KeyObject, randomUUID, X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import { buildCertificate, fingerprintOf, keyIdentifier, type Name, subjectDerOf } from "./x509.js";

/** A CA certificate with its private key, when this process may sign with it. */
export interface CaCertificate {
  id: string;
  role: "root" | "intermediate";
  der: Buffer;
  x509: X509Certificate;
  fingerprint: string;
  /** Absent for a certificate whose key is kept elsewhere. */
  key?: KeyObject;
}

/** A certificate just issued, with the chain to send after it. */
export interface IssuedCertificate {
  der: Buffer;
  /** The issuing intermediate (DER), nearest first. */
  chain: Buffer[];
  notBefore: Date;
  notAfter: Date;
}

/** Backdating of notBefore, for agents whose clocks run a little behind (at most a tenth of the lifetime). */
export const CLOCK_SKEW_MS = 60_000;

function backdated(now: Date, ttlMs: number): Date {
  return new Date(now.getTime() - Math.min(CLOCK_SKEW_MS, ttlMs / 10));
}

const CA_KEY_USAGE = { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true };

/** A new ECDSA P-256 key pair with its SPKI. */
export function newKeyPair(): { privateKey: KeyObject; spkiDer: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { privateKey, spkiDer: publicKey.export({ type: "spki", format: "der" }) };
}

/** Wraps a DER certificate (and its key) for signing and trust decisions. */
export function caCertificate(id: string, role: "root" | "intermediate", der: Uint8Array, key?: KeyObject): CaCertificate {
  const buffer = Buffer.from(der);
  return { id, role, der: buffer, x509: new X509Certificate(buffer), fingerprint: fingerprintOf(buffer), ...(key ? { key } : {}) };
}

/** A self-signed root, valid `ttlMs` (pathlen 1: it signs intermediates only). */
export function createRoot(ttlMs: number, now = new Date()): CaCertificate {
  const { privateKey, spkiDer } = newKeyPair();
  const name: Name = [
    { shortName: "O", value: "AgentGateway" },
    { shortName: "CN", value: `AgentGateway root CA ${now.toISOString().slice(0, 10)}` },
  ];
  const der = buildCertificate({
    subject: name,
    spkiDer,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(now.getTime() + ttlMs),
    extensions: [{ name: "basicConstraints", cA: true, pathLenConstraint: 1, critical: true }, CA_KEY_USAGE],
    signingKey: privateKey,
  });
  return caCertificate(randomUUID(), "root", der, privateKey);
}

/** A new intermediate signed by the root (pathlen 0: it signs leaves only), never outliving it. */
export function createIntermediate(root: CaCertificate, ttlMs: number, now = new Date()): CaCertificate {
  if (!root.key) throw new Error("the root's private key is not available here: an intermediate cannot be created");
  const { privateKey, spkiDer } = newKeyPair();
  const der = buildCertificate({
    subject: [
      { shortName: "O", value: "AgentGateway" },
      { shortName: "CN", value: `AgentGateway intermediate CA ${now.toISOString()}` },
    ],
    issuerSubjectDer: subjectDerOf(root.der),
    spkiDer,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter: clamp(new Date(now.getTime() + ttlMs), root),
    extensions: [{ name: "basicConstraints", cA: true, pathLenConstraint: 0, critical: true }, CA_KEY_USAGE],
    authorityKeyId: keyIdOf(root),
    signingKey: root.key,
  });
  return caCertificate(randomUUID(), "intermediate", der, privateKey);
}

/**
 * An agent's client certificate: the only name is the SPIFFE URI SAN (the subject is empty, as
 * an X509-SVID allows), clientAuth only — so an agent's certificate cannot serve as a gateway's.
 */
export function issueClientCertificate(issuer: CaCertificate, spkiDer: Uint8Array, spiffeId: string, ttlMs: number, now = new Date()): IssuedCertificate {
  return issueLeaf(issuer, spkiDer, [], ttlMs, now, [
    { name: "basicConstraints", cA: false, critical: true },
    { name: "keyUsage", digitalSignature: true, keyAgreement: true, critical: true },
    { name: "extKeyUsage", clientAuth: true },
    // type 6: uniformResourceIdentifier (RFC 5280 GeneralName).
    { name: "subjectAltName", altNames: [{ type: 6, value: spiffeId }], critical: true },
  ]);
}

/** A gateway serving certificate for host names and IP addresses, serverAuth only. */
export function issueServerCertificate(issuer: CaCertificate, spkiDer: Uint8Array, names: readonly string[], ttlMs: number, now = new Date()): IssuedCertificate {
  const altNames = names.map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n }));
  return issueLeaf(issuer, spkiDer, [{ shortName: "CN", value: names[0] ?? "agentgateway" }], ttlMs, now, [
    { name: "basicConstraints", cA: false, critical: true },
    { name: "keyUsage", digitalSignature: true, keyAgreement: true, critical: true },
    { name: "extKeyUsage", serverAuth: true },
    { name: "subjectAltName", altNames },
  ]);
}

function issueLeaf(
  issuer: CaCertificate,
  spkiDer: Uint8Array,
  subject: Name,
  ttlMs: number,
  now: Date,
  extensions: Array<Record<string, unknown>>,
): IssuedCertificate {
  if (!issuer.key) throw new Error("the intermediate's private key is not available");
  const notBefore = backdated(now, ttlMs);
  const notAfter = clamp(new Date(now.getTime() + ttlMs), issuer);
  const der = buildCertificate({ subject, issuerSubjectDer: subjectDerOf(issuer.der), spkiDer, notBefore, notAfter, extensions, authorityKeyId: keyIdOf(issuer), signingKey: issuer.key });
  return { der, chain: [issuer.der], notBefore, notAfter };
}

/** A certificate never outlives its issuer. */
function clamp(notAfter: Date, issuer: CaCertificate): Date {
  const limit = new Date(issuer.x509.validTo);
  return notAfter.getTime() > limit.getTime() ? limit : notAfter;
}

function keyIdOf(cert: CaCertificate): Buffer {
  return keyIdentifier(cert.x509.publicKey.export({ type: "spki", format: "der" }));
}

/** Reads an imported PEM private key (PKCS#8, SEC1 or PKCS#1). */
export function importPrivateKey(pem: string): KeyObject {
  return createPrivateKey({ key: pem, format: "pem" });
}
