import { X509Certificate } from "node:crypto";
import * as tls from "node:tls";
import type { DescService } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { createAdminClient } from "../../client/admin-client.js";
import { type ClientCertificate, createGatewayTransport } from "../../client/transport.js";
import { createCertificateRequest } from "../../client/protocol/csr.js";
import { type GatewayClient, gatewayClient, type Identity, type Session, withSession } from "../../agent/lib/direct.js";

/** The CA pin a gateway printed at start. */
export function caPinOf(output: string): string {
  const match = /--ca-pin ([0-9a-f]{64})/.exec(output);
  if (!match?.[1]) throw new Error(`no CA pin in the gateway output:\n${output}`);
  return match[1];
}

/** An admin client over https, trusting the gateway by its CA pin. */
export function pinnedAdmin<S extends DescService>(service: S, url: string, pin: string, key: string): Client<S> {
  return createAdminClient(service, key, (interceptors) => createGatewayTransport(url, { pins: [pin] }, { interceptors }).transport);
}

/** An agent-side client over https (its own connection), presenting `certificate` if given. */
export function pinnedAgentClient(url: string, pin: string, certificate?: ClientCertificate): { client: GatewayClient; close(): void } {
  const t = createGatewayTransport(url, { pins: [pin] }, { clientCertificate: () => certificate });
  return { client: gatewayClient(t.transport), close: () => t.close() };
}

/** Requests a certificate for the agent with a fresh TLS key; returns it as PEM with the key. */
export async function issueCertificate(client: GatewayClient, agentId: string, identity: Identity, session: Session): Promise<ClientCertificate & { spiffeId: string; issuerDer: Uint8Array; bundle: Uint8Array[] }> {
  const request = createCertificateRequest(agentId, identity.privateKey);
  const res = await client.issueAgentCertificate({ csrDer: request.csrDer, bindingSignature: request.bindingSignature }, withSession(session));
  const cert = [res.certificateDer, ...res.chainDer].map((der) => new X509Certificate(der).toString()).join("");
  return { cert, key: request.privateKeyPem, spiffeId: res.spiffeId, issuerDer: res.chainDer[0] ?? new Uint8Array(), bundle: res.trustBundleDer };
}

/**
 * Opens a raw TLS connection (ALPN h2) with the certificate, sends the HTTP/2 client preface
 * and an empty SETTINGS frame, and reports whether the server answered with any byte
 * ("served": its HTTP/2 SETTINGS) or closed the connection without one ("refused"). Bounded.
 */
export async function probeTls(url: string, certificate: ClientCertificate | undefined, timeoutMs = 10_000): Promise<"served" | "refused"> {
  const { hostname, port } = new URL(url);
  return await new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: hostname,
      port: Number(port),
      ALPNProtocols: ["h2"],
      rejectUnauthorized: false,
      ...(certificate ? { cert: certificate.cert, key: certificate.key } : {}),
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("TLS probe: neither an answer nor a close"));
    }, timeoutMs);
    let settled = false;
    const done = (verdict: "served" | "refused") => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(verdict);
    };
    socket.once("secureConnect", () => {
      // Client preface, then SETTINGS with no parameters (length 0, type 4, flags 0, stream 0).
      socket.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1"), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
    });
    socket.once("data", () => done("served"));
    socket.on("error", () => done("refused"));
    socket.once("close", () => done("refused"));
  });
}
