import { AckStatus, type ControlStreamRequest } from "../../gen/agentgateway/v1/control_pb.js";
import type { AppContext } from "../app/context.js";
import type { AckStatusName } from "../db/schema.js";
import { InvalidInputError } from "../errors/errors.js";
import type { AgentIdentity } from "../identity/principal.js";
import type { AgentConnection, StreamSink } from "./connection.js";

// What a ControlStream does, whichever transport serves it (control-stream-handler.ts through
// connect-node, wire-control-stream.ts straight on HTTP/2). Protocol: docs/protocol.md,
// "ControlStream".

/** How long a new stream may take to send its hello before it is refused. */
export const HELLO_TIMEOUT_MS = 10_000;

/** The refusal of a stream whose first message is not a hello, or that sent none in time. */
export function helloRequired(): InvalidInputError {
  return new InvalidInputError("the first ControlStream message must be a hello, sent within 10 s of opening the stream");
}

const ACK_STATUS: Partial<Record<AckStatus, AckStatusName>> = {
  [AckStatus.OK]: "OK",
  [AckStatus.FAILED]: "FAILED",
  [AckStatus.UNSUPPORTED]: "UNSUPPORTED",
};

/**
 * Registers the stream after its hello: commands the agent says it applied are acknowledged,
 * the welcome is written to `sink`, then everything the hub sends the agent, and the agent's
 * pending commands are scheduled for delivery. Shed (RESOURCE_EXHAUSTED) before any
 * database work when too many streams are opening at once (a reconnect storm).
 */
export async function openControlSession(app: AppContext, identity: AgentIdentity, request: ControlStreamRequest, sink: StreamSink): Promise<AgentConnection> {
  if (request.kind.case !== "hello") throw helloRequired();
  const hello = request.kind.value;
  const lastApplied = Number(hello.lastAppliedSequence);
  const conn = await app.control.admission.streamOpens.run(async () => {
    await app.control.acknowledgeApplied(identity.agentId, lastApplied);
    return await app.control.open(identity, lastApplied, sink);
  });
  // Registered, and its opening slot released: now the agent is welcomed.
  conn.start(app.control.welcome());
  app.logger.debug({ agentId: identity.agentId, lastApplied, version: hello.agentVersion }, "control stream opened");
  app.control.markDirty(identity.agentId);
  return conn;
}

/**
 * Handles one message the agent sent after its hello. Returns false when the stream must end:
 * a second hello is a protocol error (the agent will reconnect).
 */
export function handleControlRequest(app: AppContext, conn: AgentConnection, request: ControlStreamRequest): boolean {
  const kind = request.kind;
  switch (kind.case) {
    case "ack": {
      const status = ACK_STATUS[kind.value.status];
      if (status) app.control.ack(conn, { sequence: Number(kind.value.sequence), status, reason: kind.value.reason });
      return true;
    }
    case "pong":
      app.control.pong(conn, kind.value.nonce);
      return true;
    case "rolloutProgress":
      app.agentEvents.rolloutProgress({
        tenantId: conn.tenantId,
        agentId: conn.agentId,
        rolloutId: kind.value.rolloutId,
        stage: kind.value.stage,
        message: kind.value.message,
      });
      return true;
    case "hello":
      conn.close();
      return false;
    default:
      return true;
  }
}
