import type { ServiceImpl } from "@connectrpc/connect";
import type { AgentGatewayService } from "../../gen/agentgateway/v1/gateway_pb.js";
import { AckStatus, type ControlStreamRequest } from "../../gen/agentgateway/v1/control_pb.js";
import type { AppContext } from "../app/context.js";
import { agentOf } from "../identity/principal.js";
import type { AckStatusName } from "../db/schema.js";
import { InvalidInputError } from "../errors/errors.js";
import { ackThrough } from "./command-store.js";
import type { AgentConnection } from "./connection.js";

const ACK_STATUS: Partial<Record<AckStatus, AckStatusName>> = {
  [AckStatus.OK]: "OK",
  [AckStatus.FAILED]: "FAILED",
  [AckStatus.UNSUPPORTED]: "UNSUPPORTED",
};

/**
 * AgentGatewayService.ControlStream. The agent's hello comes first; the gateway answers with a
 * welcome, then writes whatever the hub queues (commands, pings, a final go-away) while a reader
 * handles acks, pongs and rollout progress. Protocol: docs/protocol.md, "ControlStream".
 */
export function controlStreamHandler(app: AppContext): Pick<ServiceImpl<typeof AgentGatewayService>, "controlStream"> {
  return {
    async *controlStream(requests, ctx) {
      const identity = agentOf(ctx);
      const incoming = requests[Symbol.asyncIterator]();
      const first = await firstMessage(incoming, HELLO_TIMEOUT_MS);
      if (!first || first.done || first.value.kind.case !== "hello") {
        throw new InvalidInputError("the first ControlStream message must be a hello, sent within 10 s of opening the stream");
      }
      const hello = first.value.kind.value;
      const lastApplied = Number(hello.lastAppliedSequence);
      // Shed before any database work when too many streams are opening (reconnect storm).
      const conn = await app.control.admission.streamOpens.run(async () => {
        await ackThrough(app.database.db, identity.agentId, lastApplied);
        return await app.control.open(identity, lastApplied);
      });
      app.logger.debug({ agentId: identity.agentId, lastApplied, version: hello.agentVersion }, "control stream opened");
      const stop = () => conn.close();
      ctx.signal.addEventListener("abort", stop, { once: true });
      readRequests(app, conn, incoming).finally(stop);
      try {
        yield app.control.welcome(app.config.heartbeatIntervalMs);
        app.control.markDirty(identity.agentId);
        yield* conn.outgoing();
      } finally {
        ctx.signal.removeEventListener("abort", stop);
        app.control.remove(conn);
      }
    },
  };
}

/** How long a new stream may take to send its hello before it is refused. */
const HELLO_TIMEOUT_MS = 10_000;

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

/** Handles the agent's messages after the hello until it closes its side. */
async function readRequests(app: AppContext, conn: AgentConnection, incoming: AsyncIterator<ControlStreamRequest>): Promise<void> {
  try {
    for (;;) {
      const next = await incoming.next();
      if (next.done || conn.closed) return;
      const kind = next.value.kind;
      switch (kind.case) {
        case "ack": {
          const status = ACK_STATUS[kind.value.status];
          if (status) app.control.ack(conn, { sequence: Number(kind.value.sequence), status, reason: kind.value.reason });
          break;
        }
        case "pong":
          app.control.pong(conn, kind.value.nonce);
          break;
        case "rolloutProgress":
          app.agentEvents.rolloutProgress({
            tenantId: conn.tenantId,
            agentId: conn.agentId,
            rolloutId: kind.value.rolloutId,
            stage: kind.value.stage,
            message: kind.value.message,
          });
          break;
        case "hello":
          conn.close(); // a second hello is a protocol error; the agent will reconnect
          return;
        default:
          break;
      }
    }
  } catch (err) {
    // The client went away or sent garbage; the stream ends either way.
    app.logger.debug({ err, agentId: conn.agentId }, "control stream reader ended");
  }
}
