/**
 * Bare baseline for the broadcast benchmark: a plain connect-node server on node:http2 serving
 * AgentGatewayService.ControlStream with a trivial handler (no auth, no database, no hub): on a
 * hello it answers a welcome and keeps the stream in a set; UploadHeartbeat is the trigger that
 * pushes one Command (a PeerRevoked, the same message object) to every open stream. What it
 * costs is connect-node + node:http2 per stream, the floor the gateway's broadcast sits on.
 *
 *   node --import tsx bench/lib/bare-control-server.ts   # prints "BARE listening on http://…"
 */

import { randomBytes, randomUUID } from "node:crypto";
import http2 from "node:http2";
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { type ControlStreamResponse, ControlStreamResponseSchema } from "../../gen/agentgateway/v1/control_pb.js";
import { AgentGatewayService } from "../../gen/agentgateway/v1/gateway_pb.js";

/** One open stream: a queue its generator drains and the wake-up of that generator. */
interface BareStream {
  queue: ControlStreamResponse[];
  wake: (() => void) | undefined;
  closed: boolean;
}

const streams = new Set<BareStream>();
let sequence = 0n;

function push(s: BareStream, message: ControlStreamResponse): void {
  s.queue.push(message);
  const wake = s.wake;
  s.wake = undefined;
  wake?.();
}

const handler = connectNodeAdapter({
  routes: (router) =>
    router.service(AgentGatewayService, {
      async *controlStream(requests) {
        const incoming = requests[Symbol.asyncIterator]();
        const first = await incoming.next();
        if (first.done) return;
        const s: BareStream = { queue: [], wake: undefined, closed: false };
        streams.add(s);
        // Read (and drop) acks until the client goes away.
        void (async () => {
          try {
            for (;;) if ((await incoming.next()).done) break;
          } catch {
            // The client reset the stream.
          }
          s.closed = true;
          s.wake?.();
        })();
        try {
          yield create(ControlStreamResponseSchema, { kind: { case: "welcome", value: { serverTime: timestampNow(), replicaId: "bare" } } });
          for (;;) {
            const next = s.queue.shift();
            if (next) {
              yield next;
              continue;
            }
            if (s.closed) return;
            await new Promise<void>((resolve) => {
              s.wake = resolve;
            });
          }
        } finally {
          streams.delete(s);
        }
      },
      uploadHeartbeat() {
        sequence++;
        const message = create(ControlStreamResponseSchema, {
          kind: {
            case: "command",
            value: {
              sequence,
              commandId: randomUUID(),
              createdAt: timestampNow(),
              payload: { case: "peerRevoked", value: { agentId: randomUUID(), identityPublicKey: randomBytes(32), revokedAt: timestampNow() } },
            },
          },
        });
        for (const s of streams) push(s, message);
        return {};
      },
    }),
});

const server = http2.createServer({}, handler);
server.setTimeout(0);
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  process.stdout.write(`BARE listening on http://127.0.0.1:${port}\n`);
});

process.once("SIGTERM", () => {
  for (const s of streams) {
    s.closed = true;
    s.wake?.();
  }
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
