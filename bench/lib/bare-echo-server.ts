/**
 * Bare baseline for the heartbeat benchmark: node:http2 and nothing else. Every request's body
 * is read whole and sent back as the response: for `application/grpc` with gRPC's headers and a
 * `grpc-status: 0` trailer (the body is already a gRPC-framed message), otherwise as a Connect
 * unary response (`application/proto`). No protobuf, no Connect, no auth: what a unary call
 * costs on this machine before any framework, the floor UploadHeartbeat sits on.
 *
 *   node --import tsx bench/lib/bare-echo-server.ts   # prints "BARE listening on http://…"
 */
import http2 from "node:http2";

const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
server.on("stream", (stream, headers) => {
  const grpc = String(headers["content-type"] ?? "").startsWith("application/grpc");
  const chunks: Buffer[] = [];
  stream.on("data", (chunk: Buffer) => chunks.push(chunk));
  stream.on("error", () => {});
  stream.on("end", () => {
    const body = chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks);
    if (grpc) {
      stream.respond({ ":status": 200, "content-type": "application/grpc+proto" }, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(body);
    } else {
      stream.respond({ ":status": 200, "content-type": "application/proto" });
      stream.end(body);
    }
  });
});
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  console.log(`BARE listening on http://127.0.0.1:${port}`);
});
process.on("SIGTERM", () => {
  server.close();
  process.exit(0);
});
