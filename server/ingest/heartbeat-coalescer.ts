import type { Logger } from "pino";
import { writeIsolatingBadRows } from "../db/isolating-write.js";
import type { Worker } from "../workers/worker.js";
import type { HeartbeatReport } from "../agents/agent-presence-store.js";

/** Where the coalescer writes and reads; the gateway passes the PostgreSQL queries, unit tests a stub. */
export interface HeartbeatSink {
  /** Writes every report in one statement; throws if nothing was written. */
  write(reports: ReadonlyMap<string, HeartbeatReport>): Promise<unknown>;
  /** The stored version of an agent (for agents with nothing pending here). */
  readVersion(agentId: string): Promise<{ agentVersion: string } | undefined>;
}

/**
 * Heartbeats without a database write per call: each heartbeat replaces the agent's entry in a
 * map, and one timer writes all pending entries in ONE statement per flush. At most one flush
 * runs at a time; a failed flush puts its entries back (a newer heartbeat that arrived meanwhile
 * wins field by field) for the next one; `stop()` flushes what is left. A report the database
 * refuses on its own is dropped and counted, never retried, so it cannot block the others; and
 * at most `maxPending` agents are buffered, further ones shed and counted.
 */
export class HeartbeatCoalescer implements Worker {
  readonly name = "heartbeat-flusher";
  private pending = new Map<string, HeartbeatReport>();
  /** The batch being written, still readable until the write commits. */
  private inflight: ReadonlyMap<string, HeartbeatReport> | undefined;
  /** The last flush asked for, while it (or one before it) has not finished. */
  private active: Promise<number> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /**
   * Reports written, refused by the database (dropped), and shed because the buffer was full;
   * flushes that wrote, and flushes that failed as a whole (their entries stay pending).
   */
  readonly stats = { written: 0, rejected: 0, shed: 0, flushes: 0, failures: 0 };
  private readonly maxPending: number;

  constructor(
    private readonly sink: HeartbeatSink,
    private readonly options: { intervalMs: number; logger?: Logger; maxPending?: number },
  ) {
    this.maxPending = options.maxPending ?? DEFAULT_MAX_PENDING;
  }

  /** Records a heartbeat; it reaches the database with the next flush. False when shed (buffer full). */
  record(agentId: string, report: HeartbeatReport): boolean {
    const older = this.pending.get(agentId);
    if (!older && this.pending.size >= this.maxPending) {
      this.stats.shed++;
      return false;
    }
    this.pending.set(agentId, older ? newestWins(older, report) : report);
    return true;
  }

  /** Number of agents with an unflushed heartbeat. */
  get size(): number {
    return this.pending.size;
  }

  /** The newest heartbeat of the agent not yet in the database, if any. */
  unflushed(agentId: string): HeartbeatReport | undefined {
    const pending = this.pending.get(agentId);
    const inflight = this.inflight?.get(agentId);
    if (pending && inflight) return newestWins(inflight, pending);
    return pending ?? inflight;
  }

  /**
   * The latest version the agent reported: an unflushed heartbeat on this replica first (at
   * most one flush interval old), else the stored one. An empty string when it never said.
   */
  async reportedVersion(agentId: string): Promise<string> {
    const local = this.unflushed(agentId)?.agentVersion;
    if (local !== undefined) return local;
    return (await this.sink.readVersion(agentId))?.agentVersion ?? "";
  }

  /**
   * Writes what is pending: at once when no flush is running, else right after the running one
   * (so it includes what arrived meanwhile). Resolves with the number of agents written; rejects
   * if the write failed (the entries stay pending).
   */
  flush(): Promise<number> {
    const previous = this.active;
    const run = previous ? previous.then(
      () => this.flushOnce(),
      () => this.flushOnce(),
    ) : this.flushOnce();
    this.active = run;
    const settle = () => {
      if (this.active === run) this.active = undefined;
    };
    run.then(settle, settle);
    return run;
  }

  /** Starts the flush timer. A tick is skipped while a flush is still running. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.active || this.pending.size === 0) return;
      this.flush().catch((err) => this.options.logger?.warn({ err, pending: this.pending.size }, "heartbeat flush failed; will retry"));
    }, this.options.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and writes what is pending (call after the listener stopped taking calls). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  private async flushOnce(): Promise<number> {
    if (this.pending.size === 0) return 0;
    const batch = this.pending;
    this.pending = new Map();
    this.inflight = batch;
    try {
      const result = await writeIsolatingBadRows([...batch], (rows) => this.sink.write(new Map(rows)));
      this.stats.written += result.written;
      this.stats.flushes++;
      if (result.rejected.length > 0) {
        this.stats.rejected += result.rejected.length;
        // The ids only: the refused values are exactly what must not be echoed into logs.
        this.options.logger?.warn({ agentIds: result.rejected.map(([id]) => id).slice(0, 20), count: result.rejected.length }, "heartbeats refused by the database were dropped");
      }
      return result.written;
    } catch (err) {
      this.stats.failures++;
      for (const [agentId, report] of batch) {
        const newer = this.pending.get(agentId);
        if (!newer && this.pending.size >= this.maxPending) {
          this.stats.shed++;
          continue;
        }
        this.pending.set(agentId, newer ? newestWins(report, newer) : report);
      }
      throw err;
    } finally {
      this.inflight = undefined;
    }
  }
}

/** More agents than one replica serves; a bound, not a target. */
const DEFAULT_MAX_PENDING = 200_000;

/** Merges two reports of one agent: the newer one's fields win, the older fills what it left out. */
function newestWins(older: HeartbeatReport, newer: HeartbeatReport): HeartbeatReport {
  return {
    tenantId: newer.tenantId,
    // biome-ignore lint/complexity/useMathMinMax: Dates, and the result must stay a Date
    seenAt: newer.seenAt >= older.seenAt ? newer.seenAt : older.seenAt,
    agentVersion: newer.agentVersion ?? older.agentVersion,
    host: newer.host ?? older.host,
    status: newer.status ?? older.status,
    uptimeSeconds: newer.uptimeSeconds ?? older.uptimeSeconds,
  };
}
