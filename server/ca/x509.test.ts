import { execFileSync } from "node:child_process";
import { generateKeyPairSync, randomUUID, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import forge from "node-forge";
import { afterAll, describe, expect, it } from "vitest";
import { buildCsr, createCertificateRequest } from "../../client/protocol/csr.js";
import { createIntermediate, createRoot, issueClientCertificate, issueServerCertificate, newKeyPair } from "./authority.js";
import { CsrError, validateCsr } from "./x509.js";

const dir = mkdtempSync(join(tmpdir(), "agw-x509-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function openssl(args: string[]): string {
  return execFileSync("openssl", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

describe("the internal CA's certificates", () => {
  const root = createRoot(10 * 365 * 86_400_000);
  const intermediate = createIntermediate(root, 365 * 86_400_000);

  it("chain root → intermediate → agent certificate, and OpenSSL verifies the chain for clientAuth", () => {
    const agentId = randomUUID();
    const request = createCertificateRequest(agentId, new Uint8Array(32).fill(7));
    const csr = validateCsr(request.csrDer);
    const spiffe = `spiffe://example.test/tenant/${randomUUID()}/agent/${agentId}`;
    const issued = issueClientCertificate(intermediate, csr.spkiDer, spiffe, 3_600_000);
    const leaf = new X509Certificate(issued.der);
    expect(leaf.subjectAltName).toBe(`URI:${spiffe}`);
    expect(leaf.checkIssued(intermediate.x509)).toBe(true);
    expect(leaf.verify(intermediate.x509.publicKey)).toBe(true);
    expect(intermediate.x509.verify(root.x509.publicKey)).toBe(true);
    expect(leaf.keyUsage).toEqual(["1.3.6.1.5.5.7.3.2"]);
    writeFileSync(join(dir, "root.pem"), root.x509.toString());
    writeFileSync(join(dir, "int.pem"), intermediate.x509.toString());
    writeFileSync(join(dir, "leaf.pem"), leaf.toString());
    expect(openssl(["verify", "-CAfile", join(dir, "root.pem"), "-untrusted", join(dir, "int.pem"), "-purpose", "sslclient", join(dir, "leaf.pem")])).toContain("OK");
    // The agent's certificate is refused as a server's.
    expect(() => openssl(["verify", "-CAfile", join(dir, "root.pem"), "-untrusted", join(dir, "int.pem"), "-purpose", "sslserver", join(dir, "leaf.pem")])).toThrow();
  });

  it("issues serving certificates for names and addresses", () => {
    const { spkiDer } = newKeyPair();
    const issued = issueServerCertificate(intermediate, spkiDer, ["localhost", "127.0.0.1"], 3_600_000);
    const leaf = new X509Certificate(issued.der);
    expect(leaf.checkHost("localhost")).toBe("localhost");
    expect(leaf.checkIP("127.0.0.1")).toBe("127.0.0.1");
    writeFileSync(join(dir, "server.pem"), leaf.toString());
    expect(openssl(["verify", "-CAfile", join(dir, "root.pem"), "-untrusted", join(dir, "int.pem"), "-purpose", "sslserver", join(dir, "server.pem")])).toContain("OK");
  });

  it("never issues past the issuer's own expiry", () => {
    const shortRoot = createRoot(3_600_000);
    const inter = createIntermediate(shortRoot, 365 * 86_400_000);
    expect(new Date(inter.x509.validTo).getTime()).toBeLessThanOrEqual(new Date(shortRoot.x509.validTo).getTime());
  });
});

describe("validateCsr", () => {
  it("accepts a P-256 CSR and an RSA CSR made by another implementation (forge), and returns only the key", () => {
    const p256 = createCertificateRequest(randomUUID(), new Uint8Array(32).fill(1));
    expect(validateCsr(p256.csrDer).publicKey.asymmetricKeyType).toBe("ec");
    const keys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
    const csr = forge.pki.createCertificationRequest();
    csr.publicKey = keys.publicKey;
    csr.setSubject([{ name: "commonName", value: "someone-else" }]);
    csr.setAttributes([{ name: "extensionRequest", extensions: [{ name: "basicConstraints", cA: true }] }]);
    csr.sign(keys.privateKey, forge.md.sha256.create());
    const der = Buffer.from(forge.asn1.toDer(forge.pki.certificationRequestToAsn1(csr)).getBytes(), "binary");
    expect(validateCsr(der).publicKey.asymmetricKeyType).toBe("rsa");
  });

  it("accepts OpenSSL's CSRs, and honours nothing they ask for (CA:TRUE, a subject)", () => {
    const key = join(dir, "k.pem");
    openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key]);
    const out = join(dir, "r.der");
    openssl(["req", "-new", "-key", key, "-subj", "/CN=root-please", "-addext", "basicConstraints=critical,CA:TRUE", "-outform", "DER", "-out", out]);
    const csr = validateCsr(readFileSync(out));
    const root = createRoot(86_400_000);
    const issued = new X509Certificate(issueClientCertificate(createIntermediate(root, 3_600_000), csr.spkiDer, "spiffe://t/tenant/x/agent/y", 60_000).der);
    expect(issued.ca).toBe(false);
    expect(issued.subject ?? "").not.toContain("root-please");
  });

  it("refuses a CSR whose signature is not by the key it carries (someone else's public key)", () => {
    const victim = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "der" });
    const attacker = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    expect(() => validateCsr(buildCsr(victim, attacker))).toThrow(/does not verify/);
  });

  it("refuses oversized, truncated, trailing-garbage and wrong-curve CSRs", () => {
    const good = createCertificateRequest(randomUUID(), new Uint8Array(32).fill(1)).csrDer;
    expect(() => validateCsr(new Uint8Array(5000))).toThrow(CsrError);
    expect(() => validateCsr(good.subarray(0, good.length - 3))).toThrow(CsrError);
    expect(() => validateCsr(Buffer.concat([good, Buffer.from([0])]))).toThrow(CsrError);
    const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" });
    expect(() => validateCsr(buildCsr(p384.publicKey.export({ type: "spki", format: "der" }), p384.privateKey))).toThrow(/P-256/);
    const ed = generateKeyPairSync("ed25519");
    expect(() => validateCsr(buildCsr(ed.publicKey.export({ type: "spki", format: "der" }), ed.privateKey))).toThrow(CsrError);
  });
});
