import http2, { type ServerHttp2Stream } from "node:http2";
import type { ConnectError } from "@connectrpc/connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";

// What both wire paths (the ControlStream and the unary calls) send at the end of a response.

/** How long a stream whose response ended may stay open before it is reset (its client never ended its side). */
const LINGER_AFTER_END_MS = 1000;

/** The gRPC trailers of a call that ended with `error` (or succeeded): status, message, details, the error's metadata. */
export function grpcTrailers(error: ConnectError | undefined): Record<string, string> {
  const trailers: Record<string, string> = {};
  setTrailerStatus(new Headers(), error).forEach((value, key) => {
    trailers[key] = value;
  });
  error?.metadata.forEach((value, key) => {
    trailers[key] ??= value;
  });
  return trailers;
}

/**
 * Once the response is complete, a client that keeps its side open would hold the stream (and a
 * slot of its connection) for nothing: reset it with NO_ERROR, as RFC 9113 §8.1 allows after a
 * complete response — a moment later, because a reset submitted at once makes nghttp2 drop the
 * trailers still queued behind the last DATA frame.
 */
export function closeAfterResponse(stream: ServerHttp2Stream): void {
  stream.once("finish", () => {
    setTimeout(() => {
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
    }, LINGER_AFTER_END_MS).unref();
  });
}
