import { randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ControlStreamResponseSchema } from "../../gen/agentgateway/v1/control_pb.js";

/** A message for the agent, in the shape the generated code accepts. */
export type Outgoing = MessageInitShape<typeof ControlStreamResponseSchema>;

/**
 * Where a stream's messages go: the transport that serves the call. The hub writes in order and
 * never after end(). A sink must not block and must bound what it buffers for a slow reader.
 */
export interface StreamSink {
  write(message: Outgoing): void;
  /** Ends the stream normally after what was written. */
  end(): void;
  /**
   * Drops the messages written but not handed to the transport yet that `drop` selects (the
   * directives of a halted rollout); returns how many. A sink that writes straight to its
   * transport has nothing to drop and leaves it out: what reached a transport is not unsent.
   */
  withdraw?(drop: (message: Outgoing) => boolean): number;
}

/**
 * One open ControlStream: the sink its messages go to, plus the little state the hub's shared
 * timer and delivery loop need. No per-stream timers or closures.
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
  /** Messages the hub sent while the stream was being registered: they follow the welcome. */
  private held: Outgoing[] | undefined = [];
  private endHeld = false;

  constructor(
    readonly agentId: string,
    readonly tenantId: string,
    readonly sessionId: string,
    readonly sessionExpiresAt: number,
    readonly openedAt: number,
    readonly maxAgeAt: number,
    private readonly sink: StreamSink,
  ) {
    this.lastPingAt = openedAt;
  }

  /** Writes a message; ignored once the stream is closing. */
  send(message: Outgoing): void {
    if (this.closed) return;
    if (this.held) this.held.push(message);
    else this.sink.write(message);
  }

  /** Drops the selected messages this stream has not handed to its transport yet (held, or queued in the sink); returns how many. */
  withdraw(drop: (message: Outgoing) => boolean): number {
    let dropped = 0;
    if (this.held) {
      const before = this.held.length;
      this.held = this.held.filter((m) => !drop(m));
      dropped += before - this.held.length;
    }
    return dropped + (this.sink.withdraw?.(drop) ?? 0);
  }

  /** Sends a last message (usually a GoAway), then ends the stream. */
  close(last?: Outgoing): void {
    if (this.closed) return;
    if (last) this.send(last);
    this.closed = true;
    if (this.held) this.endHeld = true;
    else this.sink.end();
  }

  /**
   * Writes the stream's first message, then what was held while it was being registered (a
   * fence or revocation found by the registration's re-check ends it right after the welcome).
   */
  start(first: Outgoing): void {
    const held = this.held ?? [];
    this.held = undefined;
    this.sink.write(first);
    for (const message of held) this.sink.write(message);
    if (this.endHeld) this.sink.end();
  }
}

/**
 * A sink for a transport that pulls (connect-node's async-iterable responses): messages queue
 * until the call's generator takes them.
 */
export class QueueSink implements StreamSink {
  private readonly queue: Outgoing[] = [];
  private ended = false;
  private failure: { error: unknown } | undefined;
  private wake: (() => void) | undefined;

  /** Messages written and not taken by the transport yet. */
  get size(): number {
    return this.queue.length;
  }

  write(message: Outgoing): void {
    this.queue.push(message);
    this.wakeUp();
  }

  end(): void {
    this.ended = true;
    this.wakeUp();
  }

  withdraw(drop: (message: Outgoing) => boolean): number {
    // Compacted in place: messages() keeps no position in the queue, it shifts from the front.
    let kept = 0;
    for (const message of this.queue) if (!drop(message)) this.queue[kept++] = message;
    const dropped = this.queue.length - kept;
    this.queue.length = kept;
    return dropped;
  }

  /** Ends the stream with an error (after what was written), e.g. a refused request message. */
  fail(error: unknown): void {
    this.failure ??= { error };
    this.end();
  }

  /** The messages, in order, until end() (or fail(), which then throws) and the queue is drained. */
  async *messages(): AsyncGenerator<Outgoing> {
    for (;;) {
      const next = this.queue.shift();
      if (next) {
        yield next;
        continue;
      }
      if (this.failure) throw this.failure.error;
      if (this.ended) return;
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
