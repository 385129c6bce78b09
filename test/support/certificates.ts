import forge from "node-forge";

/** A PEM certificate with its PEM private key. */
export interface PemPair {
  cert: string;
  key: string;
}

/** A test CA and a server certificate it issued. */
export interface TestCertificates {
  /** The self-signed CA: what a client trusts (`--ca-file`). */
  ca: PemPair;
  /** The server certificate issued by `ca`, for 127.0.0.1 and localhost. */
  server: PemPair & {
    /** Lower-case hex SHA-256 of the server certificate's DER: what `--ca-pin` takes. */
    sha256: string;
  };
}

/**
 * A throwaway PKI for TLS tests: a self-signed CA and a server certificate for 127.0.0.1 and
 * localhost signed by it, valid for an hour (a minute back-dated for clock skew). RSA because
 * node-forge signs only RSA; its key generation uses node:crypto, so this takes milliseconds.
 */
export function createTestCertificates(options: { serverNames?: string[]; serverIps?: string[] } = {}): TestCertificates {
  const caKeys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
  const caName = [{ name: "commonName", value: "AgentGateway test CA" }];
  const ca = newCertificate(caKeys.publicKey, "01", caName, caName);
  ca.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  ca.sign(caKeys.privateKey, forge.md.sha256.create());

  const serverKeys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
  const server = newCertificate(serverKeys.publicKey, "02", [{ name: "commonName", value: "127.0.0.1" }], caName);
  const names = options.serverNames ?? ["localhost"];
  const ips = options.serverIps ?? ["127.0.0.1"];
  server.setExtensions([
    { name: "basicConstraints", cA: false },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true },
    // type 2: dNSName, type 7: iPAddress (RFC 5280 GeneralName).
    { name: "subjectAltName", altNames: [...names.map((value) => ({ type: 2, value })), ...ips.map((ip) => ({ type: 7, ip }))] },
  ]);
  server.sign(caKeys.privateKey, forge.md.sha256.create());
  const der = forge.asn1.toDer(forge.pki.certificateToAsn1(server)).getBytes();
  const sha256 = forge.md.sha256.create().update(der).digest().toHex();

  return {
    ca: { cert: forge.pki.certificateToPem(ca), key: forge.pki.privateKeyToPem(caKeys.privateKey) },
    server: { cert: forge.pki.certificateToPem(server), key: forge.pki.privateKeyToPem(serverKeys.privateKey), sha256 },
  };
}

function newCertificate(publicKey: forge.pki.PublicKey, serial: string, subject: forge.pki.CertificateField[], issuer: forge.pki.CertificateField[]): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = serial;
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 3_600_000);
  cert.setSubject(subject);
  cert.setIssuer(issuer);
  return cert;
}
