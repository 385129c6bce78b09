import { randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ControlStreamResponseSchema } from "../../gen/agentgateway/v1/control_pb.js";

/** A message for the agent, in the shape the generated code accepts. */
export type Outgoing = MessageInitShape<typeof ControlStreamResponseSchema>;

/**
 * One open ControlStream: an outgoing queue the handler's generator drains, plus the little
 * state the hub's shared timer and delivery loop need. No per-stream timers or closures beyond
 * the one pending wake-up.
 */
export class AgentConnection {
  readonly id = randomUUID();
  /** Highest command sequence written to this stream (or applied before it opened). */
  lastSent = 0;
  /** Nonce of the unanswered ping, and when it was sent. */
  pingNonce: bigint | undefined;
  pingSentAt = 0;
  lastPingAt: number;
  closed = false;
  private readonly queue: Outgoing[] = [];
  private wake: (() => void) | undefined;

  constructor(
    readonly agentId: string,
    readonly tenantId: string,
    readonly sessionId: string,
    readonly sessionExpiresAt: number,
    readonly openedAt: number,
    readonly maxAgeAt: number,
  ) {
    this.lastPingAt = openedAt;
  }

  /** Queues a message; ignored once the stream is closing. */
  send(message: Outgoing): void {
    if (this.closed) return;
    this.queue.push(message);
    this.wakeUp();
  }

  /** Sends a last message (usually a GoAway), then ends the stream. */
  close(last?: Outgoing): void {
    if (this.closed) return;
    if (last) this.queue.push(last);
    this.closed = true;
    this.wakeUp();
  }

  /** The messages to write, in order, until the stream is closed and the queue drained. */
  async *outgoing(): AsyncGenerator<Outgoing> {
    for (;;) {
      const next = this.queue.shift();
      if (next) {
        yield next;
        continue;
      }
      if (this.closed) return;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
