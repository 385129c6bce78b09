/**
 * A lean Connect client for load generation: raw node:http2 sessions and hand-framed Connect
 * requests (binary protobuf via @bufbuild/protobuf), so the load generator's own CPU per call
 * is a small fraction of a connect-node client's (RESEARCH.md, "Numbers worth knowing").
 *
 * Unary: `POST /pkg.Service/Method`, `content-type: application/proto`, body = the message.
 * Streaming: `content-type: application/connect+proto`, each message in a 5-byte envelope
 * (flags, big-endian length); flag 0x02 marks the end-of-stream JSON.
 */
import http2 from "node:http2";
import { type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";

/** A Connect error returned by the server (non-200 unary, or an end-of-stream error). */
export class LeanConnectError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The server's `retry-after` hint in ms, if it sent one. */
    readonly retryAfterMs?: number,
  ) {
    super(`${code || `HTTP ${status}`}: ${message}`);
  }
}

/** Opens one HTTP/2 session (h2c prior knowledge) and waits for the server's SETTINGS. */
export async function connectSession(url: string): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(url);
  await new Promise<void>((resolve, reject) => {
    session.once("remoteSettings", () => resolve());
    session.once("error", reject);
  });
  // Errors after connect surface on the streams; keep an unhandled session error from crashing.
  session.on("error", () => {});
  return session;
}

/** Several HTTP/2 connections to one server, handed out round-robin. */
export class SessionPool {
  private next = 0;
  private constructor(readonly sessions: http2.ClientHttp2Session[]) {}

  static async open(url: string, count: number): Promise<SessionPool> {
    const sessions: http2.ClientHttp2Session[] = [];
    for (let i = 0; i < count; i++) sessions.push(await connectSession(url));
    return new SessionPool(sessions);
  }

  /** Session `i` modulo the pool size, or the next one round-robin. */
  get(i?: number): http2.ClientHttp2Session {
    const index = i ?? this.next++;
    const session = this.sessions[index % this.sessions.length];
    if (!session) throw new Error("empty session pool");
    return session;
  }

  /** The server's SETTINGS_MAX_CONCURRENT_STREAMS as received on the first connection. */
  get remoteMaxConcurrentStreams(): number | undefined {
    return this.sessions[0]?.remoteSettings.maxConcurrentStreams;
  }

  close(): void {
    for (const s of this.sessions) s.destroy();
  }
}

/** One Connect unary call with a binary body. */
export function unary<I extends DescMessage, O extends DescMessage>(
  session: http2.ClientHttp2Session,
  path: string,
  input: I,
  request: MessageShape<I>,
  output: O,
  headers: Record<string, string> = {},
): Promise<MessageShape<O>> {
  return unaryBytes(session, path, toBinary(input, request), headers).then((bytes) => fromBinary(output, bytes));
}

/** One Connect unary call with pre-serialized bytes; resolves with the response bytes. */
export function unaryBytes(session: http2.ClientHttp2Session, path: string, body: Uint8Array, headers: Record<string, string> = {}): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/proto",
      "connect-protocol-version": "1",
      ...headers,
    });
    const chunks: Buffer[] = [];
    let status = 0;
    let retryAfterMs: number | undefined;
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      const hint = h["retry-after"];
      if (typeof hint === "string" && Number.isFinite(Number(hint))) retryAfterMs = Number(hint) * 1000;
    });
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", reject);
    stream.on("end", () => {
      const bytes = chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks);
      if (status === 200) {
        resolve(bytes);
        return;
      }
      let code = "";
      let message = bytes.toString("utf8");
      try {
        const json = JSON.parse(message) as { code?: string; message?: string };
        code = json.code ?? "";
        message = json.message ?? message;
      } catch {
        // Not a Connect error body; keep the raw text.
      }
      reject(new LeanConnectError(status, code, message, retryAfterMs));
    });
    stream.end(body);
  });
}

/** Wraps a message in a Connect streaming envelope. */
function envelope(bytes: Uint8Array, flags = 0): Buffer {
  const out = Buffer.allocUnsafe(5 + bytes.length);
  out.writeUInt8(flags, 0);
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
}

/** Splits a byte stream into Connect envelopes. */
class EnvelopeReader {
  private buffer: Buffer = Buffer.alloc(0);

  /** Feeds a chunk; calls `onEnvelope` for every complete envelope in it. */
  push(chunk: Buffer, onEnvelope: (flags: number, data: Buffer) => void): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    let offset = 0;
    while (this.buffer.length - offset >= 5) {
      const length = this.buffer.readUInt32BE(offset + 1);
      if (this.buffer.length - offset < 5 + length) break;
      const flags = this.buffer.readUInt8(offset);
      onEnvelope(flags, this.buffer.subarray(offset + 5, offset + 5 + length));
      offset += 5 + length;
    }
    this.buffer = offset === this.buffer.length ? Buffer.alloc(0) : this.buffer.subarray(offset);
  }
}

/** Callbacks of a lean bidi stream. */
export interface BidiHandlers<O extends DescMessage> {
  onMessage(message: MessageShape<O>): void;
  /** The stream ended: `error` is set for an error end-of-stream, a reset, or a non-200. */
  onEnd(error?: Error): void;
}

/** A lean bidi (or client-streaming) Connect stream. */
export interface BidiStream<I extends DescMessage> {
  send(message: MessageShape<I>): void;
  /** Writes pre-serialized message bytes (one envelope). */
  sendBytes(bytes: Uint8Array): void;
  /** Half-closes our side. */
  end(): void;
  /** Resets the stream. */
  cancel(): void;
}

/** Opens a Connect bidi stream on an HTTP/2 session; the request side stays open until end(). */
export function bidi<I extends DescMessage, O extends DescMessage>(
  session: http2.ClientHttp2Session,
  path: string,
  input: I,
  output: O,
  headers: Record<string, string>,
  handlers: BidiHandlers<O>,
): BidiStream<I> {
  const stream = session.request(
    {
      ":method": "POST",
      ":path": path,
      "content-type": "application/connect+proto",
      "connect-protocol-version": "1",
      ...headers,
    },
    { endStream: false },
  );
  const reader = new EnvelopeReader();
  let status = 0;
  let ended = false;
  const finish = (error?: Error) => {
    if (ended) return;
    ended = true;
    // The server is done: release our half too, or the stream keeps a slot of the
    // connection's SETTINGS_MAX_CONCURRENT_STREAMS and later streams queue for ever.
    if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
    handlers.onEnd(error);
  };
  stream.on("response", (h) => {
    status = Number(h[":status"]);
  });
  stream.on("data", (chunk: Buffer) => {
    if (status !== 200) return;
    reader.push(chunk, (flags, data) => {
      if ((flags & 0x02) === 0) {
        handlers.onMessage(fromBinary(output, data));
        return;
      }
      const json = JSON.parse(data.toString("utf8") || "{}") as { error?: { code?: string; message?: string }; metadata?: Record<string, string[]> };
      const hint = Number(json.metadata?.["retry-after"]?.[0]);
      finish(json.error ? new LeanConnectError(status, json.error.code ?? "", json.error.message ?? "", Number.isFinite(hint) ? hint * 1000 : undefined) : undefined);
    });
  });
  stream.on("error", (err) => finish(err));
  stream.on("close", () => finish(status === 200 ? undefined : new LeanConnectError(status, "", "stream closed")));
  stream.resume();
  return {
    send: (message) => {
      if (!stream.destroyed && !stream.writableEnded) stream.write(envelope(toBinary(input, message)));
    },
    sendBytes: (bytes) => {
      if (!stream.destroyed && !stream.writableEnded) stream.write(envelope(bytes));
    },
    end: () => {
      if (!stream.destroyed && !stream.writableEnded) stream.end();
    },
    cancel: () => {
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
    },
  };
}

/**
 * One gRPC unary call (`application/grpc+proto`, the message in one 5-byte envelope) with
 * pre-serialized bytes; resolves with the response message bytes, rejects on a non-zero
 * `grpc-status` (in the trailers, or in the headers of a trailers-only response).
 */
export function grpcUnaryBytes(session: http2.ClientHttp2Session, path: string, body: Uint8Array, headers: Record<string, string> = {}): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc+proto",
      te: "trailers",
      ...headers,
    });
    const chunks: Buffer[] = [];
    let status = 0;
    let grpcStatus: string | undefined;
    let grpcMessage = "";
    const read = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) grpcStatus = String(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) grpcMessage = decodeURIComponent(String(h["grpc-message"]));
    };
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      read(h);
    });
    stream.on("trailers", read);
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", reject);
    stream.on("end", () => {
      if (status !== 200 || grpcStatus !== "0") {
        reject(new LeanConnectError(status, `grpc-status ${grpcStatus ?? "missing"}`, grpcMessage));
        return;
      }
      const bytes = chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks);
      resolve(bytes.subarray(5, 5 + bytes.readUInt32BE(1)));
    });
    stream.end(envelope(body));
  });
}
