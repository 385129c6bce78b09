import type { Logger } from "pino";
import { EventBatcher, type EventSink } from "./event-batcher.js";
import { EventSocket } from "./event-socket.js";
import { EventSpool } from "./event-spool.js";
import { answerLine, type LocalEventAnswer, parseLocalEvent } from "./local-event.js";

/**
 * Local event intake: other processes on the host hand events to the agent as JSON lines,
 * either over a unix socket (each line is answered, after it is durably in the outbox) or as
 * files dropped into a spool directory. Line format: docs/agent.md, "Local events".
 */
// The client half, for scripts and tests that import the intake.
export { sendLocalEvents } from "./event-socket.js";

/** Options of the local event source. */
export interface EventSourceOptions {
  /** Unix socket path (undefined: no socket). */
  socketPath?: string;
  /** Spool directory (undefined: no spool). */
  spoolDir?: string;
  sink: EventSink;
  logger: Logger;
  spoolIntervalMs?: number;
}

/** The unix socket and spool directory intake. */
export class LocalEventSource {
  private readonly batcher: EventBatcher;
  private readonly socket: EventSocket | undefined;
  private readonly spool: EventSpool | undefined;
  /** Counters for status. */
  readonly counters = { accepted: 0, rejected: 0 };

  constructor(private readonly options: EventSourceOptions) {
    this.batcher = new EventBatcher(options.sink, 10, 500);
    this.socket = options.socketPath ? new EventSocket(options.socketPath, async (line) => answerLine(await this.accept(line))) : undefined;
    this.spool = options.spoolDir
      ? new EventSpool(options.spoolDir, (line, fallbackId) => this.accept(line, fallbackId), options.logger, options.spoolIntervalMs ?? 1000)
      : undefined;
  }

  /** Starts listening; refuses if another live process holds the socket. */
  async start(): Promise<void> {
    await this.socket?.listen();
    await this.spool?.start();
  }

  /** Stops accepting, answers what was accepted, and removes the socket file. */
  async stop(): Promise<void> {
    await this.spool?.stop();
    await this.socket?.close();
    await this.batcher.flush();
    await this.socket?.remove();
  }

  private async accept(line: string, fallbackId?: () => string): Promise<LocalEventAnswer> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      this.counters.rejected++;
      return { ok: false, error: "not valid JSON" };
    }
    const record = parseLocalEvent(parsed, fallbackId);
    if (typeof record === "string") {
      this.counters.rejected++;
      return { ok: false, error: record };
    }
    try {
      await this.batcher.add(record);
      this.counters.accepted++;
      return { ok: true, id: record.id };
    } catch (err) {
      this.options.logger.error({ err }, "could not persist a local event");
      return { ok: false, error: "the agent could not store the event; retry", retry: true };
    }
  }
}
