import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ControlStreamRequestSchema, ControlStreamResponse } from "../../gen/agentgateway/v1/control_pb.js";
import { AckStatus } from "../../gen/agentgateway/v1/control_pb.js";
import { type GatewayClient, withSession } from "../../agent/lib/direct.js";

type Request = MessageInitShape<typeof ControlStreamRequestSchema>;

/** A ControlStream driven by a test: push requests, await responses one by one. */
export interface TestStream {
  send(request: Request): void;
  /** The next message from the gateway (pings are answered automatically and skipped). */
  next(timeoutMs?: number): Promise<ControlStreamResponse>;
  /** Resolves when the gateway ends the stream (with the error, if any). */
  ended: Promise<unknown>;
  close(): void;
}

/** Opens a ControlStream with a hello and returns a handle on it. */
export function openStream(client: GatewayClient, session: { token: string }, lastAppliedSequence = 0n): TestStream {
  const outgoing: Request[] = [{ kind: { case: "hello", value: { agentVersion: "1.0.0", lastAppliedSequence } } }];
  let wakeWriter: (() => void) | undefined;
  let closed = false;
  const requests = (async function* () {
    for (;;) {
      const next = outgoing.shift();
      if (next) {
        yield next;
        continue;
      }
      if (closed) return;
      await new Promise<void>((r) => {
        wakeWriter = r;
      });
    }
  })();
  const abort = new AbortController();
  const responses = client.controlStream(requests, { ...withSession(session), signal: abort.signal });
  const received: ControlStreamResponse[] = [];
  let wakeReader: (() => void) | undefined;
  let done = false;
  const send = (request: Request) => {
    outgoing.push(request);
    const w = wakeWriter;
    wakeWriter = undefined;
    w?.();
  };
  const ended = (async () => {
    try {
      for await (const message of responses) {
        if (message.kind.case === "ping") {
          send({ kind: { case: "pong", value: { nonce: message.kind.value.nonce } } });
          continue;
        }
        received.push(message);
        wakeReader?.();
      }
      return undefined;
    } catch (err) {
      return err;
    } finally {
      done = true;
      wakeReader?.();
    }
  })();
  return {
    send,
    ended,
    async next(timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const message = received.shift();
        if (message) return message;
        if (done) throw new Error("stream ended");
        const wait = deadline - Date.now();
        if (wait <= 0) throw new Error("timed out waiting for a ControlStream message");
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, wait);
          wakeReader = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    },
    close() {
      closed = true;
      wakeWriter?.();
      abort.abort();
    },
  };
}

/** An ack message for a command sequence. */
export function ackOf(sequence: bigint, status = AckStatus.OK): Request {
  return { kind: { case: "ack", value: { sequence, status, reason: "" } } };
}
