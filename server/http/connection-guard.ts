import type * as http2 from "node:http2";
import type * as net from "node:net";

/**
 * Bounds on what one client can hold on the port. Every connection either does useful work or
 * is closed: a socket that never completes a request, a keep-alive connection or an HTTP/2
 * session left idle, a slow HTTP/1.1 request body, and connections past the caps.
 */
export interface ConnectionLimits {
  /**
   * From accept to the first complete request head (HTTP/1.1) or the first stream (HTTP/2),
   * the TLS handshake included; also the longest an HTTP/1.1 request body may take (Connect
   * sends only unary bodies over HTTP/1.1, so a slow one is a slowloris, not a stream).
   */
  firstRequestTimeoutMs: number;
  /** A connection with no request in flight (HTTP/1.1) or no open stream (HTTP/2) is closed after this long. */
  idleTimeoutMs: number;
  /** Open connections in total; 0 = no cap. */
  maxConnections: number;
  /** Open connections per remote address; 0 = no cap. Agents behind one NAT share an address. */
  maxConnectionsPerSource: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: streams one session may have open at once. */
  maxStreamsPerConnection: number;
}

/** Generous enough for a fleet behind a NAT, tight enough that a stranger cannot hold the port. */
export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  firstRequestTimeoutMs: 10_000,
  idleTimeoutMs: 120_000,
  maxConnections: 50_000,
  maxConnectionsPerSource: 2_000,
  maxStreamsPerConnection: 100,
};

/** Why connections were closed by the guard, for metrics and tests. */
export interface ConnectionGuardStats {
  refusedTotalCap: number;
  refusedSourceCap: number;
  closedBeforeFirstRequest: number;
  closedIdle: number;
  closedSlowBody: number;
}

type Closable = net.Socket | http2.ServerHttp2Session;

/**
 * Applies ConnectionLimits. The listener calls it at each step of a connection's life; it owns
 * the timers, so none outlives its connection (each is unref'd and cleared on close).
 */
export class ConnectionGuard {
  readonly stats: ConnectionGuardStats = { refusedTotalCap: 0, refusedSourceCap: 0, closedBeforeFirstRequest: 0, closedIdle: 0, closedSlowBody: 0 };
  readonly #limits: ConnectionLimits;
  readonly #perSource = new Map<string, number>();
  readonly #timers = new WeakMap<Closable, NodeJS.Timeout>();
  #open = 0;

  constructor(limits: ConnectionLimits) {
    this.#limits = limits;
  }

  get limits(): ConnectionLimits {
    return this.#limits;
  }

  /** Counts a new TCP connection, or destroys it when a cap is reached. Returns whether it was admitted. */
  admit(socket: net.Socket): boolean {
    const source = socket.remoteAddress ?? "unknown";
    const fromSource = this.#perSource.get(source) ?? 0;
    if (this.#limits.maxConnections > 0 && this.#open >= this.#limits.maxConnections) {
      this.stats.refusedTotalCap++;
      socket.destroy();
      return false;
    }
    if (this.#limits.maxConnectionsPerSource > 0 && fromSource >= this.#limits.maxConnectionsPerSource) {
      this.stats.refusedSourceCap++;
      socket.destroy();
      return false;
    }
    this.#open++;
    this.#perSource.set(source, fromSource + 1);
    socket.once("close", () => {
      this.#open--;
      const left = (this.#perSource.get(source) ?? 1) - 1;
      if (left === 0) this.#perSource.delete(source);
      else this.#perSource.set(source, left);
    });
    return true;
  }

  /** A connection (socket or HTTP/2 session) that has not yet sent its first request. */
  awaitFirstRequest(conn: Closable): void {
    if (isSocket(conn)) conn.once("close", () => this.#disarm(conn));
    this.#arm(conn, this.#limits.firstRequestTimeoutMs, () => {
      this.stats.closedBeforeFirstRequest++;
      close(conn);
    });
  }

  /** A request or stream started on the connection: it is doing work. */
  busy(conn: Closable): void {
    this.#disarm(conn);
  }

  /** The connection's last request or stream ended; close it if nothing follows in time. */
  idle(conn: Closable): void {
    this.#arm(conn, this.#limits.idleTimeoutMs, () => {
      this.stats.closedIdle++;
      close(conn);
    });
  }

  /** An HTTP/1.1 request whose body must arrive within the first-request timeout. */
  watchHttp1Body(socket: net.Socket, req: { readableEnded: boolean; once(event: "end" | "close", fn: () => void): unknown }): void {
    if (req.readableEnded) return;
    const timer = setTimeout(() => {
      this.stats.closedSlowBody++;
      socket.destroy();
    }, this.#limits.firstRequestTimeoutMs);
    timer.unref();
    const clear = (): void => clearTimeout(timer);
    req.once("end", clear);
    req.once("close", clear);
  }

  /** Counts an HTTP/2 session's open streams, so the session is idle exactly when it has none. */
  trackSession(session: http2.ServerHttp2Session): void {
    this.awaitFirstRequest(session);
    let streams = 0;
    session.on("stream", (stream) => {
      streams++;
      this.busy(session);
      stream.once("close", () => {
        streams--;
        if (streams === 0 && !session.closed && !session.destroyed) this.idle(session);
      });
    });
    session.once("close", () => this.#disarm(session));
  }

  #arm(conn: Closable, ms: number, onExpire: () => void): void {
    this.#disarm(conn);
    const timer = setTimeout(() => {
      this.#timers.delete(conn);
      onExpire();
    }, ms);
    timer.unref();
    this.#timers.set(conn, timer);
  }

  #disarm(conn: Closable): void {
    const timer = this.#timers.get(conn);
    if (timer !== undefined) {
      clearTimeout(timer);
      this.#timers.delete(conn);
    }
  }
}

function isSocket(conn: Closable): conn is net.Socket {
  return typeof (conn as Partial<http2.ServerHttp2Session>).goaway !== "function";
}

/**
 * A socket is destroyed; a session gets GOAWAY (close) and, if the peer does not hang up, is
 * destroyed a moment later, so a client that ignores GOAWAY cannot keep it.
 */
function close(conn: Closable): void {
  if (isSocket(conn)) {
    conn.destroy();
    return;
  }
  conn.close();
  setTimeout(() => {
    if (!conn.destroyed) conn.destroy();
  }, 1_000).unref();
}
