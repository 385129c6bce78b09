import type { ServiceImpl } from "@connectrpc/connect";
import type { AgentGatewayService } from "../../gen/agentgateway/v1/gateway_pb.js";
import type { ControlStreamRequest } from "../../gen/agentgateway/v1/control_pb.js";
import type { AppContext } from "../app/context.js";
import { agentOf } from "../identity/principal.js";
import { QueueSink, type AgentConnection } from "./connection.js";
import { HELLO_TIMEOUT_MS, handleControlRequest, helloRequired, openControlSession } from "./control-session.js";

/**
 * AgentGatewayService.ControlStream through connect-node and its interceptors: the path for
 * the JSON codecs, compressed messages, deadlines and tracing. Binary, uncompressed Connect and
 * gRPC calls are served beneath connect-node by wire-control-stream.ts; both run
 * control-session.ts. The agent's hello comes first; the gateway answers with a welcome, then
 * writes whatever the hub sends while a reader handles acks, pongs and rollout progress.
 */
export function controlStreamHandler(app: AppContext): Pick<ServiceImpl<typeof AgentGatewayService>, "controlStream"> {
  return {
    async *controlStream(requests, ctx) {
      const identity = agentOf(ctx);
      const incoming = requests[Symbol.asyncIterator]();
      const first = await firstMessage(incoming, HELLO_TIMEOUT_MS);
      if (!first || first.done) throw helloRequired();
      const sink = new QueueSink();
      const conn = await openControlSession(app, identity, first.value, sink);
      const stop = () => conn.close();
      ctx.signal.addEventListener("abort", stop, { once: true });
      readRequests(app, conn, incoming, sink).finally(stop);
      try {
        yield* sink.messages();
      } finally {
        ctx.signal.removeEventListener("abort", stop);
        app.control.remove(conn);
      }
    },
  };
}

/** The first message, or undefined if none arrives in time (a silent client holds no slot). */
async function firstMessage<T>(incoming: AsyncIterator<T>, timeoutMs: number): Promise<IteratorResult<T> | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), timeoutMs);
  });
  try {
    return await Promise.race([incoming.next(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Handles the agent's messages after the hello until it closes its side. A message the
 * interceptors refuse (a value no column can store, a protovalidate rule) ends the stream with
 * that error, as on the wire path; so does a client that went away, which no longer listens.
 */
async function readRequests(app: AppContext, conn: AgentConnection, incoming: AsyncIterator<ControlStreamRequest>, sink: QueueSink): Promise<void> {
  try {
    for (;;) {
      const next = await incoming.next();
      if (next.done || conn.closed || !handleControlRequest(app, conn, next.value)) return;
    }
  } catch (err) {
    app.logger.debug({ err, agentId: conn.agentId }, "control stream reader ended");
    sink.fail(err);
  }
}
