/**
 * Many open ControlStreams from one process, cheaply: the lean Connect client (raw node:http2,
 * hand-framed envelopes), `perConnection` streams per HTTP/2 connection. Each stream sends a
 * hello, waits for the welcome, answers pings, records when it receives commands and (by
 * default) acknowledges them like a real agent.
 */
import type http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { AckStatus, ControlStreamRequestSchema, type ControlStreamResponse, ControlStreamResponseSchema } from "../../gen/agentgateway/v1/control_pb.js";
import { type BidiStream, bidi, connectSession, LeanConnectError } from "./lean-client.js";

const PATH = "/agentgateway.v1.AgentGatewayService/ControlStream";
const HELLO = toBinary(
  ControlStreamRequestSchema,
  create(ControlStreamRequestSchema, { kind: { case: "hello", value: { agentVersion: "bench", lastAppliedSequence: 0n } } }),
);

/** Options for StreamFleet.open. */
export interface FleetOptions {
  /** Streams per HTTP/2 connection. */
  perConnection: number;
  /** Streams being opened at once (hello sent, welcome not yet received). */
  openConcurrency: number;
  /** Acknowledge every command (as agents do). */
  ack: boolean;
  /** Give up opening after this long. */
  openTimeoutMs: number;
}

interface Member {
  stream: BidiStream<typeof ControlStreamRequestSchema>;
  ended: boolean;
}

/** N open ControlStreams and the receipt time of the latest command on each. */
export class StreamFleet {
  /** performance.now() when each stream last received a command (NaN: none since reset()). */
  readonly receivedAt: Float64Array;
  readonly members: Member[] = [];
  readonly sessions: http2.ClientHttp2Session[] = [];
  private readonly connecting: Array<Promise<http2.ClientHttp2Session>> = [];
  received = 0;
  ended = 0;
  /** Openings the server shed with resource_exhausted (admission control) and that were retried. */
  shed = 0;
  goAways = 0;
  firstError: string | undefined;
  private waiter: { count: number; resolve: () => void } | undefined;

  private constructor(
    readonly size: number,
    private readonly options: FleetOptions,
  ) {
    this.receivedAt = new Float64Array(size).fill(Number.NaN);
  }

  /** An empty fleet of `size` slots; open() fills them. */
  static create(size: number, options: FleetOptions): StreamFleet {
    return new StreamFleet(size, options);
  }

  /**
   * Opens streams [from, to), stream i with tokens[i] ("" or missing: no Authorization header),
   * and resolves when every one has been welcomed. Calling it in steps grows the fleet.
   */
  async open(url: string, tokens: string[], from: number, to: number): Promise<void> {
    const deadline = Date.now() + this.options.openTimeoutMs;
    let next = from;
    const worker = async () => {
      while (next < to) {
        if (Date.now() > deadline) throw new Error(`opening streams timed out at ${next}/${to}`);
        const i = next++;
        await this.openWithRetry(url, tokens[i] ?? "", i, deadline);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.openConcurrency, to - from) }, () => worker()));
  }

  private session(url: string, i: number): Promise<http2.ClientHttp2Session> {
    const index = Math.floor(i / this.options.perConnection);
    let pending = this.connecting[index];
    if (!pending) {
      // Stored synchronously, so concurrent openers of this slot share one connection.
      pending = connectSession(url).then((s) => {
        this.sessions.push(s);
        return s;
      });
      this.connecting[index] = pending;
    }
    return pending;
  }

  /**
   * Opens stream i, retrying when the gateway sheds the opening (resource_exhausted from its
   * admission control) after the server's retry hint plus jitter, as agents do; bounded by the
   * open deadline. Any other failure ends the run.
   */
  private async openWithRetry(url: string, token: string, i: number, deadline: number): Promise<void> {
    for (;;) {
      try {
        await this.openOne(url, token, i);
        return;
      } catch (err) {
        if (!(err instanceof LeanConnectError && err.code === "resource_exhausted") || Date.now() > deadline) throw err;
        this.shed++;
        // The shed stream counted as ended; it is replaced, not lost.
        this.ended--;
        const hintMs = err.retryAfterMs ?? 200;
        await new Promise((resolve) => setTimeout(resolve, hintMs + Math.random() * hintMs));
      }
    }
  }

  private async openOne(url: string, token: string, i: number): Promise<void> {
    const session = await this.session(url, i);
    await new Promise<void>((resolve, reject) => {
      let welcomed = false;
      const member: Member = {
        ended: false,
        stream: bidi(session, PATH, ControlStreamRequestSchema, ControlStreamResponseSchema, token ? { authorization: `Bearer ${token}` } : {}, {
          onMessage: (message) => {
            if (message.kind.case === "welcome" && !welcomed) {
              welcomed = true;
              resolve();
              return;
            }
            this.onMessage(i, member, message);
          },
          onEnd: (error) => {
            member.ended = true;
            this.ended++;
            // An opening that fails rejects (and may be retried); only a welcomed stream's end is a stream error.
            if (!welcomed) reject(error ?? new Error("stream ended before the welcome"));
            else if (error) this.firstError ??= error.message;
          },
        }),
      };
      this.members[i] = member;
      member.stream.sendBytes(HELLO);
    });
  }

  private onMessage(i: number, member: Member, message: ControlStreamResponse): void {
    switch (message.kind.case) {
      case "command": {
        this.receivedAt[i] = performance.now();
        this.received++;
        if (this.options.ack) {
          member.stream.send(
            create(ControlStreamRequestSchema, { kind: { case: "ack", value: { sequence: message.kind.value.sequence, status: AckStatus.OK, reason: "" } } }),
          );
        }
        if (this.waiter && this.received >= this.waiter.count) {
          this.waiter.resolve();
          this.waiter = undefined;
        }
        break;
      }
      case "ping":
        member.stream.send(create(ControlStreamRequestSchema, { kind: { case: "pong", value: { nonce: message.kind.value.nonce } } }));
        break;
      case "goAway":
        this.goAways++;
        break;
      default:
        break;
    }
  }

  /** Forgets receipts, before the next broadcast. */
  reset(): void {
    this.receivedAt.fill(Number.NaN);
    this.received = 0;
  }

  /** Resolves when `count` commands have arrived since reset(), or after the timeout. */
  async waitForCommands(count: number, timeoutMs: number): Promise<boolean> {
    if (this.received >= count) return true;
    return await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        resolve(false);
      }, timeoutMs);
      this.waiter = {
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve(true);
        },
      };
    });
  }

  /** Cancels every stream and closes every connection. */
  close(): void {
    for (const m of this.members) m?.stream.cancel();
    for (const s of this.sessions) s.destroy();
  }
}
