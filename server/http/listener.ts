import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import type * as tls from "node:tls";
import type { connectNodeAdapter } from "@connectrpc/connect-node";
import { ConnectionGuard, type ConnectionLimits, DEFAULT_CONNECTION_LIMITS } from "./connection-guard.js";

/** The `(req, res) => void` that connectNodeAdapter returns (connect-node does not export its name). */
export type NodeRequestHandler = ReturnType<typeof connectNodeAdapter>;

/** TLS material for listen(); ALPN then picks HTTP/2 or HTTP/1.1 per connection. */
export interface ListenTlsOptions {
  cert: string | Buffer;
  key: string | Buffer;
  /** CAs that client certificates are checked against (used with requestClientCert). */
  ca?: string | Buffer | Array<string | Buffer>;
  /**
   * Ask clients for a certificate but accept connections without one (or with one that does
   * not verify): agents enroll before they have a certificate, so handlers decide using
   * `socket.authorized` / `getPeerCertificate()` instead of the handshake failing.
   */
  requestClientCert?: boolean;
  /**
   * Decides each connection once its TLS handshake is done, before the HTTP/2 session (or the
   * HTTP/1.1 parser) sees a byte: false destroys the socket. The mTLS deny list
   * (server/ca/cert-gate.ts) runs here.
   */
  admitClient?: (socket: tls.TLSSocket) => boolean;
}

/** Options for listen(). */
export interface ListenOptions {
  host: string;
  /** 0 picks a free port; Listener.address reports the bound one. */
  port: number;
  handler: NodeRequestHandler;
  tls?: ListenTlsOptions;
  /** Timeouts and caps per connection (connection-guard.ts); defaults when omitted. */
  limits?: ConnectionLimits;
}

/** A bound port serving gRPC, gRPC-Web and Connect over HTTP/2 and HTTP/1.1. */
export interface Listener {
  readonly address: { host: string; port: number };
  /** http://host:port or https://host:port. */
  readonly url: string;
  /** What the connection guard refused or closed so far. */
  readonly guard: ConnectionGuard;
  /** Replaces the serving certificate for new connections (TLS only; renewal of a CA-issued one). */
  setCertificate(cert: string | Buffer, key: string | Buffer): void;
  /**
   * Stops accepting connections, sends GOAWAY to HTTP/2 sessions, closes idle HTTP/1
   * connections, waits up to graceMs for in-flight requests, then destroys what is left.
   */
  close(graceMs: number): Promise<void>;
}

// Every HTTP/2 connection starts with this preface (RFC 9113 §3.4); no HTTP/1 request can.
const http2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** Binds one port that serves the handler over HTTP/2 and HTTP/1.1, with or without TLS. */
export async function listen(options: ListenOptions): Promise<Listener> {
  const guard = new ConnectionGuard(options.limits ?? DEFAULT_CONNECTION_LIMITS);
  const tracker = new ConnectionTracker(guard);
  const onRequest = tracker.wrap(options.handler);
  const outer = options.tls ? createTlsServer(options.tls, onRequest, tracker, guard) : createCleartextServer(onRequest, tracker, guard);

  await new Promise<void>((resolve, reject) => {
    outer.once("error", reject);
    outer.listen({ host: options.host, port: options.port }, () => {
      outer.off("error", reject);
      resolve();
    });
  });

  const bound = outer.address();
  if (bound === null || typeof bound === "string") {
    throw new Error(`listener bound to an unexpected address: ${String(bound)}`);
  }
  const address = { host: options.host, port: bound.port };
  const scheme = options.tls ? "https" : "http";
  const urlHost = options.host.includes(":") ? `[${options.host}]` : options.host;
  let closing: Promise<void> | undefined;
  return {
    address,
    url: `${scheme}://${urlHost}:${address.port}`,
    guard,
    setCertificate(cert, key) {
      if (!options.tls) throw new Error("setCertificate needs a TLS listener");
      (outer as tls.Server).setSecureContext({ cert, key, ...(options.tls.ca ? { ca: options.tls.ca } : {}) });
    },
    close(graceMs) {
      closing ??= tracker.drain(outer, graceMs);
      return closing;
    },
  };
}

type RequestListener = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/**
 * Cleartext: Node's http2 server with allowHTTP1 does not serve HTTP/1.1 without TLS, so
 * each connection is sniffed for the HTTP/2 preface and handed to an http2 or http server
 * that never listens on its own.
 */
function createCleartextServer(onRequest: RequestListener, tracker: ConnectionTracker, guard: ConnectionGuard): net.Server {
  const h2 = http2.createServer({ settings: { maxConcurrentStreams: guard.limits.maxStreamsPerConnection } }, onRequest);
  // No socket timeout: ControlStream and Watch stay open for hours with little traffic. The
  // guard closes sessions that have no open stream instead.
  h2.setTimeout(0);
  h2.on("session", (session) => {
    tracker.addSession(session);
    guard.trackSession(session);
  });

  // Node's own headersTimeout/requestTimeout only run for a server that listens itself, which
  // this one never does: the guard bounds request heads and bodies instead.
  const h1 = http.createServer({ requestTimeout: 0 }, onRequest);
  h1.setTimeout(0);

  const outer = net.createServer((socket) => {
    if (!guard.admit(socket)) return;
    tracker.addSocket(socket);
    if (tracker.isClosing) {
      socket.destroy();
      return;
    }
    tracker.undecided.add(socket);
    // Until the first request: this covers sniffing, a partial request head and a bare preface.
    guard.awaitFirstRequest(socket);
    sniff(socket, (protocol) => {
      tracker.undecided.delete(socket);
      if (protocol === "h2") {
        // From here the session's own deadline applies (trackSession).
        guard.busy(socket);
        h2.emit("connection", socket);
      } else {
        tracker.addHttp1Socket(socket);
        h1.emit("connection", socket);
        // The socket was paused to hand it over with its first bytes unread; http's
        // connection listener does not resume a stream that was paused explicitly.
        socket.resume();
      }
    });
  });
  return outer;
}

/** TLS: ALPN chooses h2 or http/1.1, and the http2 module serves both (allowHTTP1). */
function createTlsServer(options: ListenTlsOptions, onRequest: RequestListener, tracker: ConnectionTracker, guard: ConnectionGuard): net.Server {
  const server = http2.createSecureServer(
    {
      allowHTTP1: true,
      handshakeTimeout: guard.limits.firstRequestTimeoutMs,
      settings: { maxConcurrentStreams: guard.limits.maxStreamsPerConnection },
      cert: options.cert,
      key: options.key,
      ca: options.ca,
      requestCert: options.requestClientCert ?? false,
      rejectUnauthorized: false,
    },
    onRequest,
  );
  server.setTimeout(0);
  // With allowHTTP1 the server applies http's request timeout (5 min) to HTTP/1.1 requests.
  if ("requestTimeout" in server) {
    Object.assign(server, { requestTimeout: 0 });
  }
  // Before TLS does any work for a connection past the caps.
  server.prependListener("connection", (socket: net.Socket) => guard.admit(socket));
  server.on("session", (session) => {
    tracker.addSession(session);
    guard.trackSession(session);
  });
  // http2 serves a connection from its own secureConnection listener; with a client gate, that
  // listener runs only for admitted sockets, so a refused one is destroyed before any HTTP/2
  // frame (not even the client's preface) is read, and before the server sends its SETTINGS.
  const admit = options.admitClient;
  if (admit) {
    const serve = server.listeners("secureConnection") as Array<(socket: tls.TLSSocket) => void>;
    server.removeAllListeners("secureConnection");
    server.on("secureConnection", (socket: tls.TLSSocket) => {
      let admitted = false;
      try {
        admitted = admit(socket);
      } catch {
        admitted = false;
      }
      if (!admitted) {
        socket.on("error", () => {});
        socket.destroy();
        return;
      }
      for (const listener of serve) listener.call(server, socket);
    });
  }
  server.on("secureConnection", (socket: tls.TLSSocket) => {
    if (socket.destroyed) return;
    tracker.addSocket(socket);
    if (socket.alpnProtocol !== "h2") {
      tracker.addHttp1Socket(socket);
      guard.awaitFirstRequest(socket);
    }
    if (tracker.isClosing && socket.alpnProtocol !== "h2") {
      socket.destroy();
    }
  });
  return server;
}

/**
 * Reads until the bytes either match the whole HTTP/2 preface or stop matching it, then
 * puts them back so that the chosen server parses the connection from its first byte.
 */
function sniff(socket: net.Socket, decide: (protocol: "h2" | "http1") => void): void {
  let buffered: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    const n = Math.min(buffered.length, http2Preface.length);
    const matches = buffered.subarray(0, n).equals(http2Preface.subarray(0, n));
    if (matches && n < http2Preface.length) {
      return;
    }
    socket.off("data", onData);
    socket.pause();
    socket.unshift(buffered);
    decide(matches ? "h2" : "http1");
  };
  socket.on("data", onData);
}

/** Knows every connection and in-flight HTTP/1 request, so close() can drain them. */
class ConnectionTracker {
  readonly undecided = new Set<net.Socket>();
  readonly #sockets = new Set<net.Socket>();
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  // HTTP/1 sockets with the number of responses in flight on each.
  readonly #http1 = new Map<net.Socket, number>();
  readonly #idleWaiters = new Set<() => void>();
  #closing = false;
  readonly #guard: ConnectionGuard;

  constructor(guard: ConnectionGuard) {
    this.#guard = guard;
  }

  get isClosing(): boolean {
    return this.#closing;
  }

  addSocket(socket: net.Socket): void {
    this.#sockets.add(socket);
    // A reset connection must not crash the process; the protocol servers log nothing either.
    socket.on("error", () => {});
    socket.once("close", () => {
      this.#sockets.delete(socket);
      this.undecided.delete(socket);
      this.#http1.delete(socket);
      if (this.#sockets.size === 0) {
        for (const waiter of [...this.#idleWaiters]) {
          waiter();
        }
      }
    });
  }

  addHttp1Socket(socket: net.Socket): void {
    this.#http1.set(socket, 0);
  }

  addSession(session: http2.ServerHttp2Session): void {
    this.#sessions.add(session);
    session.once("close", () => this.#sessions.delete(session));
    // Errors end the session; they are the client's problem, not the server's.
    session.on("error", () => {});
    if (this.#closing) {
      session.close();
    }
  }

  /** Counts HTTP/1 responses per socket; HTTP/2 streams are drained by their session. */
  wrap(handler: NodeRequestHandler): RequestListener {
    return (req, res) => {
      if (res instanceof http.ServerResponse) {
        const socket = req.socket;
        if (this.#closing) {
          // A keep-alive client sent one more request while we drain: answer it, then close.
          res.shouldKeepAlive = false;
        }
        this.#http1.set(socket, (this.#http1.get(socket) ?? 0) + 1);
        this.#guard.busy(socket);
        this.#guard.watchHttp1Body(socket, req as http.IncomingMessage);
        res.once("close", () => {
          const inFlight = (this.#http1.get(socket) ?? 1) - 1;
          this.#http1.set(socket, inFlight);
          if (this.#closing && inFlight === 0) {
            // end(), not destroy(): the last bytes of the response may still be queued.
            socket.end();
          } else if (inFlight === 0) {
            this.#guard.idle(socket);
          }
        });
      }
      handler(req, res);
    };
  }

  async drain(server: net.Server, graceMs: number): Promise<void> {
    this.#closing = true;
    server.close();
    for (const socket of this.undecided) {
      socket.destroy();
    }
    for (const session of this.#sessions) {
      // close() sends GOAWAY with the last stream id and lets open streams finish.
      session.close();
    }
    for (const [socket, inFlight] of this.#http1) {
      if (inFlight === 0) {
        socket.destroy();
      }
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#allClosed(),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      }),
    ]);
    clearTimeout(timer);
    for (const session of this.#sessions) {
      session.destroy();
    }
    for (const socket of this.#sockets) {
      socket.destroy();
    }
    await this.#allClosed();
  }

  #allClosed(): Promise<void> {
    if (this.#sockets.size === 0) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const waiter = (): void => {
        this.#idleWaiters.delete(waiter);
        resolve();
      };
      this.#idleWaiters.add(waiter);
    });
  }
}
