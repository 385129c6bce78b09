import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { Duplex } from "node:stream";
import * as tls from "node:tls";
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
  /** SHA-256 fingerprints of the gateway's leaf certificate (hex, colons optional). */
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
      checkServerIdentity: (name, cert) => tls.checkServerIdentity(name, cert) ?? pinError(pins, cert),
    };
    sessionManager = new Http2SessionManager(url, ping, {
      // With a verifiable chain, OpenSSL checks it and checkServerIdentity checks name and pin.
      // With only a pin, OpenSSL cannot vouch for anything and never calls checkServerIdentity,
      // so the connection is gated: HTTP/2 bytes reach the socket only after the pin matched.
      createConnection: () => (chainRequired ? tls.connect(tlsOptions) : pinGatedConnection(tlsOptions, pins, (error) => (lastError = error))),
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
function pinGatedConnection(options: tls.ConnectionOptions, pins: readonly string[], onRefused: (error: Error) => void): Duplex {
  const socket = tls.connect(options);
  let open = false;
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
      pinError(pins, socket.getPeerCertificate()) ?? (socket.alpnProtocol === "h2" ? undefined : new Error("the gateway did not negotiate HTTP/2 (ALPN h2)"));
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
    if (!gate.push(data)) socket.pause();
  });
  socket.once("end", () => gate.push(null));
  socket.once("error", (error) => {
    onRefused(error);
    gate.destroy();
  });
  socket.once("close", () => gate.destroy());
  return gate;
}

function pinError(pins: readonly string[], cert: tls.PeerCertificate | undefined): Error | undefined {
  if (pins.length === 0) return undefined;
  const actual = cert?.fingerprint256 ? cert.fingerprint256.replace(/:/g, "").toLowerCase() : "";
  if (actual && pins.includes(actual)) return undefined;
  const error = new Error(`gateway certificate SHA-256 ${actual || "(none)"} matches no pinned fingerprint`) as NodeJS.ErrnoException;
  error.code = "ERR_AGW_CERT_PIN_MISMATCH";
  return error;
}
