import { X509Certificate } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createTestCertificates } from "./certificates.js";

describe("test certificates", () => {
  it("issue a server certificate for 127.0.0.1 and localhost from a separate CA, with its pin", () => {
    const { ca, server } = createTestCertificates();
    const caCert = new X509Certificate(ca.cert);
    const serverCert = new X509Certificate(server.cert);
    expect(caCert.ca).toBe(true);
    expect(serverCert.ca).toBe(false);
    expect(serverCert.checkIssued(caCert)).toBe(true);
    expect(serverCert.verify(caCert.publicKey)).toBe(true);
    expect(serverCert.verify(serverCert.publicKey)).toBe(false);
    expect(serverCert.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(serverCert.checkHost("localhost")).toBe("localhost");
    expect(serverCert.checkHost("example.com")).toBeUndefined();
    expect(server.sha256).toBe(serverCert.fingerprint256.replace(/:/g, "").toLowerCase());
  });
});
