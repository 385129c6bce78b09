import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { CONTROL_STREAM_PATH, type WireControlStream } from "../control/wire-control-stream.js";
import type { NodeRequestHandler } from "../http/listener.js";
import { wireProtocolOf } from "../wire/wire-request.js";
import type { WireUnary } from "../wire/wire-unary.js";

/**
 * The agents' hot calls, served beneath connect-node when they come in the common form
 * (binary, uncompressed, no deadline, HTTP/2; wire-request.ts): idle ControlStreams in bulk
 * (wire-control-stream.ts) and the unary calls agents make all the time (wire-unary.ts). Every
 * other request — and these calls in any other form — goes to `fallback`, connect-node.
 */
export function withWirePaths(paths: { controlStream: WireControlStream; unary: WireUnary }, fallback: NodeRequestHandler): NodeRequestHandler {
  return (req, res) => {
    const request = req as Http2ServerRequest;
    const response = res as Http2ServerResponse;
    if (request.url === CONTROL_STREAM_PATH) {
      const protocol = wireProtocolOf(request, "stream");
      if (protocol) return paths.controlStream.serve(protocol, request, response);
    } else {
      const route = paths.unary.route(request.url);
      const protocol = route && wireProtocolOf(request, "unary");
      if (route && protocol) return paths.unary.serve(route, protocol, request, response);
    }
    fallback(req, res);
  };
}
