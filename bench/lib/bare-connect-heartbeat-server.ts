/**
 * Second baseline for the heartbeat benchmark: connect-node on node:http2 serving
 * AgentGatewayService.UploadHeartbeat with a handler that answers what the gateway answers
 * (server time, next interval) and nothing else: no interceptors, no auth, no validation, no
 * coalescer. Between the bare echo and the gateway it splits what the framework costs per call
 * (Connect/gRPC parsing, protobuf, async iterables) from what the gateway's own code costs.
 *
 *   node --import tsx bench/lib/bare-connect-heartbeat-server.ts   # prints "BARE listening on http://…"
 */
import http2 from "node:http2";
import { durationFromMs, timestampNow } from "@bufbuild/protobuf/wkt";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { AgentGatewayService } from "../../gen/agentgateway/v1/gateway_pb.js";

const interval = durationFromMs(30_000);
const handler = connectNodeAdapter({
  routes: (router) =>
    router.service(AgentGatewayService, {
      uploadHeartbeat: () => ({ serverTime: timestampNow(), nextHeartbeatInterval: interval }),
    }),
});

const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } }, handler);
server.setTimeout(0);
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  process.stdout.write(`BARE listening on http://127.0.0.1:${port}\n`);
});
process.once("SIGTERM", () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
