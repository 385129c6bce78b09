import type { Logger } from "pino";
import { deleteChallengesExpiredBefore, deleteSessionsExpiredBefore, deleteUsedChallengesExpiredBefore } from "../auth/session-store.js";
import type { RetentionConfig } from "../config/config.js";
import { deleteAckedBefore } from "../control/command-store.js";
import { advisoryUnlock, tryAdvisoryLock } from "../db/advisory-lock.js";
import type { Database, Executor } from "../db/database.js";
import { deleteEventsReceivedBefore, deleteTelemetryReceivedBefore } from "../ingest/ingest-store.js";
import type { Worker } from "./worker.js";

/**
 * Key of the advisory lock held by the replica sweeping right now ("agwretn" in ASCII); any
 * constant nothing else uses. Exported for the test that holds it.
 */
export const RETENTION_LOCK_KEY = "27416835458954350";

/** At most this many batches per table and sweep, so one sweep always ends; the next goes on. */
const MAX_BATCHES_PER_TABLE = 1000;

/** One table's sweep: rows older than `ageMs` go, at most `limit` per statement. */
interface TableSweep {
  table: string;
  ageMs: number;
  deleteBatch(db: Executor, before: Date, limit: number): Promise<number>;
}

/** What one sweep did: per table, the rows each DELETE statement removed. */
export interface SweepReport {
  /** Another replica held the lock: this one did nothing. */
  skipped: boolean;
  /** Stopped before the end (shutdown). */
  aborted: boolean;
  tables: Record<string, number[]>;
}

/**
 * Deletes what grows without end — telemetry, agent events, acknowledged commands, expired
 * sessions and handshake challenges — once older than its configured age, in batches of at most
 * `batchSize` rows with a pause between them, so no statement holds many row locks or much I/O.
 * Audit records are never deleted (nothing here touches audit_events), nor anything an operator
 * created and can list (agents, keys, enrollment tokens, rollouts: they grow with operator
 * actions, not with traffic, and agents reference their enrollment token).
 *
 * One replica sweeps at a time: a session-level advisory lock, tried (never waited for) on a
 * dedicated pooled connection that also runs the batches, released when the sweep ends. Each
 * DELETE commits on its own, so no long transaction pins old row versions; a replica that
 * dies mid-sweep drops the connection and with it the lock. The embedded engine has one
 * process and one connection, so it sweeps without the lock and without holding the connection
 * through the pauses.
 */
export class RetentionSweeper implements Worker {
  readonly name = "retention-sweeper";
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<SweepReport> | undefined;
  private abort = new AbortController();
  private stopped = true;
  private readonly sweeps: TableSweep[];

  constructor(
    private readonly database: Pick<Database, "db" | "kind">,
    private readonly config: RetentionConfig,
    private readonly logger?: Pick<Logger, "info" | "warn">,
  ) {
    this.sweeps = [
      { table: "telemetry_points", ageMs: config.telemetryMs, deleteBatch: deleteTelemetryReceivedBefore },
      { table: "agent_events", ageMs: config.eventsMs, deleteBatch: deleteEventsReceivedBefore },
      { table: "agent_commands", ageMs: config.commandsMs, deleteBatch: deleteAckedBefore },
      { table: "sessions", ageMs: config.sessionsMs, deleteBatch: deleteSessionsExpiredBefore },
      { table: "used_challenges", ageMs: config.sessionsMs, deleteBatch: deleteUsedChallengesExpiredBefore },
      { table: "auth_challenges", ageMs: config.sessionsMs, deleteBatch: deleteChallengesExpiredBefore },
    ].filter((s) => s.ageMs > 0);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.abort = new AbortController();
    this.schedule();
  }

  /** Stops the schedule, cuts a running sweep short at its next batch, and waits for it. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.abort.abort();
    await this.running?.catch(() => undefined);
  }

  /** Runs one sweep now, or joins the one running. */
  sweep(): Promise<SweepReport> {
    this.running ??= this.run(this.abort.signal).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private schedule(): void {
    if (this.stopped || this.sweeps.length === 0) return;
    this.timer = setTimeout(() => {
      this.sweep()
        .then((report) => {
          const deleted = Object.fromEntries(Object.entries(report.tables).map(([t, batches]) => [t, batches.reduce((a, b) => a + b, 0)]).filter(([, n]) => Number(n) > 0));
          if (Object.keys(deleted).length > 0) this.logger?.info({ deleted }, "retention sweep deleted old rows");
        })
        .catch((err) => this.logger?.warn({ err }, "retention sweep failed"))
        .finally(() => this.schedule());
    }, this.config.intervalMs);
    this.timer.unref();
  }

  private async run(signal: AbortSignal): Promise<SweepReport> {
    if (this.database.kind !== "postgres") return this.sweepTables(this.database.db, signal, () => Promise.resolve());
    return this.database.db.connection().execute(async (conn) => {
      if (!(await tryAdvisoryLock(conn, RETENTION_LOCK_KEY))) return { skipped: true, aborted: false, tables: {} };
      try {
        return await this.sweepTables(conn, signal, () => pause(this.config.batchPauseMs, signal));
      } finally {
        // Before the connection goes back to the pool: a session lock would stay with it.
        await advisoryUnlock(conn, RETENTION_LOCK_KEY);
      }
    });
  }

  private async sweepTables(db: Executor, signal: AbortSignal, between: () => Promise<void>): Promise<SweepReport> {
    const report: SweepReport = { skipped: false, aborted: false, tables: {} };
    const { batchSize } = this.config;
    for (const sweep of this.sweeps) {
      const batches: number[] = [];
      report.tables[sweep.table] = batches;
      const before = new Date(Date.now() - sweep.ageMs);
      for (let i = 0; i < MAX_BATCHES_PER_TABLE; i++) {
        if (signal.aborted) return { ...report, aborted: true };
        const deleted = await sweep.deleteBatch(db, before, batchSize);
        batches.push(deleted);
        if (deleted < batchSize) break;
        await between();
      }
    }
    return report;
  }
}

/** Waits `ms`, or less when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
