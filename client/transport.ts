import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { Duplex } from "node:stream";
import * as tls from "node:tls";
import { X509Certificate } from "node:crypto";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { traceContextInterceptor } from "./trace-context.js";

/**
 * How a client (the agent, the CLI) decides to trust the gateway. There is no trust on first use: an https
 * gateway is trusted through a CA file, a SHA-256 pin of its certificate, or (explicitly) the
 * system trust store; http:// (h2c) is for loopback and development only.
 */
export interface TrustOptions {
  /** PEM file of the CA(s) that issued the gateway's certificate. */
  caFile?: string;
  /**
   * SHA-256 fingerprints (hex, colons optional) of the gateway's leaf certificate, or of a CA
   * certificate in the chain it presents (the internal CA's root, printed at the gateway's
   * start): a CA pin is accepted only when the chain from the leaf up to the pinned CA verifies
   * and the leaf is a serving certificate for the host name.
   */
  pins: string[];
  /** Trust Node's bundled/system CAs (for publicly issued certificates). */
  systemCa?: boolean;
  /** Allow http:// to a host that is not loopback. */
  allowInsecureHttp?: boolean;
}

/** A transport to the gateway with its own HTTP/2 connection, and the means to close that connection. */
export interface GatewayTransport {
  transport: Transport;
  url: URL;
  /** Closes the HTTP/2 connection (and any call still on it). */
  close(): void;
  /** Why the last pin-gated connection was refused (pin mismatch, TLS error), once. */
  lastConnectionError(): Error | undefined;
  /** Drops the current HTTP/2 connection, so the next call opens a new one (with the current client certificate). */
  reconnect(): void;
}

/** A client certificate (PEM, the chain after the leaf) with its private key (PEM). */
export interface ClientCertificate {
  cert: string;
  key: string;
}

/** Timing of the transport (tests and the storm bench shrink them). */
export interface TransportOptions {
  protocol?: "connect" | "grpc";
  /** Default deadline of unary calls, ms (streams pass their own). */
  unaryTimeoutMs?: number;
  /** HTTP/2 PING interval while calls are open: detects a dead gateway without a FIN/RST. */
  pingIntervalMs?: number;
  pingTimeoutMs?: number;
  /** Interceptors for every call (e.g. the bearer credential of client/admin-client.ts). */
  interceptors?: Interceptor[];
  /** The client certificate for each new https connection (mTLS), read when it connects; undefined = none. */
  clientCertificate?: () => ClientCertificate | undefined;
  /**
   * A connection that presented a client certificate was closed by the gateway right after
   * the TLS handshake, before any HTTP/2 byte: the gateway refused the certificate (revoked
   * agent, expired, another CA). The agent then connects without it.
   */
  onClientCertificateRefused?: (error: Error) => void;
  /** A `traceparent` to send when no span is active (agwctl: the TRACEPARENT environment variable). */
  traceparent?: () => string | undefined;
}

/** Thrown for a server URL or trust setting the agent refuses to use. */
export class TrustError extends Error {
  override name = "TrustError";
}

/** Normalizes a certificate pin to 64 lowercase hex digits; throws TrustError if malformed. */
export function normalizePin(pin: string): string {
  const hex = pin
    .trim()
    .toLowerCase()
    .replace(/^sha256[:/=]/, "")
    .replace(/:/g, "");
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new TrustError(`certificate pin must be a SHA-256 fingerprint (64 hex digits, colons allowed), got "${pin}"`);
  return hex;
}

/** Whether a host name is loopback (where h2c without TLS is acceptable). */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (host === "localhost" || host.endsWith(".localhost")) return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1" || host === "0:0:0:0:0:0:0:1";
}

/** Checks a server URL against the trust options; returns the parsed URL. */
export function checkServerUrl(server: string, trust: TrustOptions): URL {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new TrustError(`--server must be a URL like https://gateway.example.com:7070, got "${server}"`);
  }
  if (url.protocol === "http:") {
    if (!isLoopbackHost(url.hostname) && !trust.allowInsecureHttp) {
      throw new TrustError(
        `refusing cleartext http:// to ${url.hostname}: use https with --ca-file or --ca-pin (http is for loopback; --allow-insecure-http overrides)`,
      );
    }
  } else if (url.protocol === "https:") {
    if (!trust.caFile && trust.pins.length === 0 && !trust.systemCa) {
      throw new TrustError(
        "an https gateway needs --ca-file FILE or --ca-pin SHA256 (or --system-ca for a publicly issued certificate); AgentGateway clients never trust on first use",
      );
    }
  } else {
    throw new TrustError(`unsupported scheme ${url.protocol} in --server (use https:// or http://)`);
  }
  if (url.pathname !== "/" || url.search || url.hash) throw new TrustError("--server must be a base URL without a path");
  return url;
}

/**
 * Builds a Connect (or gRPC) transport over its own HTTP/2 connection. For https it verifies
 * the gateway with the CA file (ca + hostname check) and/or the certificate pin: a pin is
 * checked in checkServerIdentity when the chain verifies, and by a gate that holds back every
 * byte until the handshake is done when only a pin is configured (self-signed gateway).
 */
export function createGatewayTransport(server: string, trust: TrustOptions, options: TransportOptions = {}): GatewayTransport {
  const url = checkServerUrl(server, trust);
  const pins = trust.pins.map(normalizePin);
  const ping = { pingIntervalMs: options.pingIntervalMs ?? 20_000, pingTimeoutMs: options.pingTimeoutMs ?? 10_000 };
  let sessionManager: Http2SessionManager;
  let lastError: Error | undefined;
  if (url.protocol === "https:") {
    const ca = trust.caFile ? readFileSync(trust.caFile) : undefined;
    const chainRequired = ca !== undefined || pins.length === 0;
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const port = Number(url.port || 443);
    const tlsOptions: tls.ConnectionOptions = {
      host,
      port,
      ...(isIP(host) ? {} : { servername: host }),
      ALPNProtocols: ["h2"],
      ...(ca ? { ca } : {}),
      rejectUnauthorized: chainRequired,
      // OpenSSL verified the chain here, so a pinned CA anywhere in it is enough.
      checkServerIdentity: (name, cert) => tls.checkServerIdentity(name, cert) ?? pinError(pins, cert, undefined),
    };
    const connectTls = (): tls.ConnectionOptions => {
      const client = options.clientCertificate?.();
      return client ? { ...tlsOptions, cert: client.cert, key: client.key } : tlsOptions;
    };
    sessionManager = new Http2SessionManager(url, ping, {
      // With a verifiable chain, OpenSSL checks it and checkServerIdentity checks name and pin.
      // With only a pin, OpenSSL cannot vouch for anything and never calls checkServerIdentity,
      // so the connection is gated: HTTP/2 bytes reach the socket only after the pin matched.
      // With a client certificate the gate is used in both cases: it sees whether the gateway
      // sent any byte before closing, i.e. whether it refused the certificate.
      createConnection: () => {
        const connectOptions = connectTls();
        const certificateRefused = connectOptions.cert
          ? (error: Error) => {
              lastError = error;
              options.onClientCertificateRefused?.(error);
            }
          : undefined;
        if (chainRequired && !certificateRefused) return tls.connect(connectOptions);
        return gatedConnection(connectOptions, chainRequired ? [] : pins, (error) => (lastError = error), certificateRefused);
      },
    });
  } else {
    sessionManager = new Http2SessionManager(url, ping);
  }
  const common = {
    baseUrl: url.origin,
    httpVersion: "2" as const,
    sessionManager,
    defaultTimeoutMs: options.unaryTimeoutMs ?? 20_000,
    // Trace context first, so every call of the agent and the CLI can continue a caller's trace.
    interceptors: [traceContextInterceptor(options.traceparent), ...(options.interceptors ?? [])],
  };
  const transport = options.protocol === "grpc" ? createGrpcTransport(common) : createConnectTransport(common);
  return {
    transport,
    url,
    close: () => sessionManager.abort(),
    reconnect: () => sessionManager.abort(),
    lastConnectionError: () => {
      const error = lastError;
      lastError = undefined;
      return error;
    },
  };
}

/**
 * A duplex that forwards to a TLS socket only after its certificate matched a pin. Node's
 * http2 cannot be handed a TLS socket that is destroyed in its own secureConnect handler (a
 * native assertion fails), so HTTP/2 writes into this gate and is released — or the whole
 * connection is failed — once the handshake is done. Nothing, not even the HTTP/2 preface, is
 * sent to a server that does not hold the pinned certificate.
 */
function gatedConnection(
  options: tls.ConnectionOptions,
  pins: readonly string[],
  onRefused: (error: Error) => void,
  onCertificateRefused?: (error: Error) => void,
): Duplex {
  const socket = tls.connect(options);
  let open = false;
  let received = false;
  const held: Array<{ chunk: Buffer; callback: (error?: Error | null) => void }> = [];
  const gate = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      if (open) socket.write(chunk, callback);
      else held.push({ chunk, callback });
    },
    final(callback) {
      socket.end();
      callback();
    },
    destroy(error, callback) {
      socket.destroy();
      callback(error);
    },
  });
  socket.once("secureConnect", () => {
    const error =
      (pins.length === 0 ? undefined : pinError(pins, socket.getPeerCertificate(true), String(options.host ?? ""))) ?? (socket.alpnProtocol === "h2" ? undefined : new Error("the gateway did not negotiate HTTP/2 (ALPN h2)"));
    if (error) {
      // Ended without an error object: an errored HTTP/2 session re-emits it on the next tick,
      // uncaught if the session was torn down meanwhile. The reason goes to onRefused.
      onRefused(error);
      socket.destroy();
      gate.destroy();
      return;
    }
    open = true;
    for (const { chunk, callback } of held.splice(0)) socket.write(chunk, callback);
  });
  socket.on("data", (data: Buffer) => {
    received = true;
    if (!gate.push(data)) socket.pause();
  });
  if (onCertificateRefused) {
    socket.once("close", () => {
      if (!open || received) return;
      const error = new Error(
        "the gateway closed the connection right after the TLS handshake: it refused this client certificate (revoked agent, expired, or another CA)",
      ) as NodeJS.ErrnoException;
      error.code = "ERR_AGW_CLIENT_CERT_REFUSED";
      onCertificateRefused(error);
    });
  }
  socket.once("end", () => gate.push(null));
  socket.once("error", (error) => {
    onRefused(error);
    gate.destroy();
  });
  socket.once("close", () => gate.destroy());
  return gate;
}

/**
 * Undefined when a pin matches the leaf, or a CA certificate of the presented chain. `host` set
 * means OpenSSL did not verify the chain (pin-only): a CA pin then holds only if every link from
 * the leaf up to the pinned CA verifies now and the leaf serves `host`.
 */
function pinError(pins: readonly string[], cert: tls.DetailedPeerCertificate | tls.PeerCertificate | undefined, host: string | undefined): Error | undefined {
  if (pins.length === 0) return undefined;
  const actual = cert?.fingerprint256 ? cert.fingerprint256.replace(/:/g, "").toLowerCase() : "";
  if (actual && pins.includes(actual)) return undefined;
  if (cert && caPinHolds(pins, cert as tls.DetailedPeerCertificate, host)) return undefined;
  const error = new Error(`gateway certificate SHA-256 ${actual || "(none)"} matches no pinned fingerprint`) as NodeJS.ErrnoException;
  error.code = "ERR_AGW_CERT_PIN_MISMATCH";
  return error;
}

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";

function caPinHolds(pins: readonly string[], leaf: tls.DetailedPeerCertificate, host: string | undefined): boolean {
  if (!leaf.raw) return false;
  const now = Date.now();
  const valid = (x: X509Certificate) => new Date(x.validFrom).getTime() <= now && now < new Date(x.validTo).getTime();
  let child = new X509Certificate(leaf.raw);
  if (host !== undefined) {
    if (!valid(child) || child.ca) return false;
    if (child.keyUsage !== undefined && !child.keyUsage.includes(SERVER_AUTH)) return false;
    if ((isIP(host) ? child.checkIP(host) : child.checkHost(host)) === undefined) return false;
  }
  let node: tls.DetailedPeerCertificate | undefined = leaf.issuerCertificate;
  // A chain is short; the bound also stops at a self-signed certificate (its issuer is itself).
  for (let depth = 0; node?.raw && depth < 5; depth++) {
    const parent = new X509Certificate(node.raw);
    if (host !== undefined && (!parent.ca || !valid(parent) || !child.checkIssued(parent) || !child.verify(parent.publicKey))) return false;
    if (pins.includes(parent.fingerprint256.replace(/:/g, "").toLowerCase())) return true;
    if (node.issuerCertificate === node) break;
    child = parent;
    node = node.issuerCertificate;
  }
  return false;
}
