import type { Logger } from "pino";
import { writeIsolatingBadRows } from "../db/isolating-write.js";
import type { Ack } from "./command-store.js";

/** Acks kept while the database is unreachable; a lost ack means a redelivery, not a lost command. */
const MAX_BUFFERED_ACKS = 100_000;
/** Buffered acks that start a write at once instead of at the next timer tick. */
const WRITE_AT = 500;

/**
 * The acknowledgements of this replica's streams, coalesced into one statement per write. One
 * write is in flight at a time, and at most one is queued behind it, which takes every ack
 * buffered by then: the 10,000 acks a broadcast brings back within a second are a few large
 * statements, not twenty concurrent ones that hold the pool (and every other call waiting for a
 * connection) while they contend for the same rows.
 *
 * An ack the database refuses on its own is dropped and counted (its command stays unacked and
 * is redelivered, which agents handle), never retried, so it cannot block the others. On any
 * other failure the batch is kept for the next write, up to MAX_BUFFERED_ACKS: past that the
 * oldest are shed and counted, with the same consequence — redelivery, never loss of a command.
 */
export class AckBuffer {
  private acks: Ack[] = [];
  private write: Promise<void> = Promise.resolve();
  private writeQueued = false;
  /** Acks the database refused on their own (dropped), and acks shed while the buffer was full. */
  readonly stats = { rejected: 0, shed: 0 };

  /** `record` writes acks in one statement (command-store.recordAcks). */
  constructor(
    private readonly record: (acks: Ack[]) => Promise<unknown>,
    private readonly logger: Logger,
  ) {}

  push(ack: Ack): void {
    this.acks.push(ack);
    if (this.acks.length >= WRITE_AT) void this.flush();
  }

  /** Resolves once every ack buffered now has been written (or kept after a failure). */
  flush(): Promise<void> {
    if (this.writeQueued) return this.write;
    this.writeQueued = true;
    this.write = this.write.then(() => {
      this.writeQueued = false;
      return this.writeBuffered();
    });
    return this.write;
  }

  private async writeBuffered(): Promise<void> {
    if (this.acks.length === 0) return;
    const batch = this.acks;
    this.acks = [];
    try {
      const result = await writeIsolatingBadRows(batch, (rows) => this.record([...rows]));
      if (result.rejected.length > 0) {
        this.stats.rejected += result.rejected.length;
        this.logger.warn({ agentIds: result.rejected.map((a) => a.agentId).slice(0, 20), count: result.rejected.length }, "acks refused by the database were dropped");
      }
    } catch (err) {
      this.logger.warn({ err, count: batch.length }, "recording acks failed; will retry");
      this.acks = batch.concat(this.acks);
      const excess = this.acks.length - MAX_BUFFERED_ACKS;
      if (excess > 0) {
        this.acks.splice(0, excess);
        this.stats.shed += excess;
      }
    }
  }
}
