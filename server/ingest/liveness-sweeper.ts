import type { Kysely } from "kysely";
import type { Logger } from "pino";
import type { Worker } from "../workers/worker.js";
import { appendAuditBatch } from "../audit/audit-log.js";
import type { Schema } from "../db/schema.js";
import { type LivenessTransition, recordLivenessTransitions, tryLockSweep } from "../agents/agent-presence-store.js";

/** Settings of the sweeper. */
export interface LivenessSweeperOptions {
  intervalMs: number;
  staleAfterMs: number;
  offlineAfterMs: number;
  /** Transitions recorded per transaction. */
  batchSize?: number;
  /** Transactions per run; what is left waits for the next run. */
  maxBatchesPerRun?: number;
  logger?: Logger;
  /** Told of each batch of transitions after it committed (live views announce them on the bus). */
  onTransitions?: (transitions: LivenessTransition[]) => void;
}

/** What one sweep did. */
export interface SweepResult {
  /** False when another replica held the sweep lock, so this one did nothing. */
  swept: boolean;
  transitions: LivenessTransition[];
  /** True when the run stopped at its bound with transitions left for the next run. */
  more: boolean;
}

/** The audit action of a liveness change. */
export const LIVENESS_CHANGED = "agent.liveness_changed";

/**
 * Detects agents going ONLINE → STALE → OFFLINE (and back) and records each transition in the
 * tenant's audit log, in the same transaction as the new `agents.liveness`. Runs never overlap:
 * in this process a run starts only after the previous one ended, and across replicas only the
 * holder of a transaction-scoped advisory lock sweeps. Work per run is bounded (batchSize ×
 * maxBatchesPerRun), so a mass transition (a network partition) is spread over several runs
 * instead of one long transaction.
 */
export class LivenessSweeper implements Worker {
  readonly name = "liveness-sweeper";
  private running: Promise<SweepResult> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;

  constructor(
    private readonly db: Kysely<Schema>,
    private readonly options: LivenessSweeperOptions,
  ) {}

  /**
   * One run now, as of `now` (tests pass an explicit instant). While a run is in progress the
   * call returns that run's promise instead of starting a second one.
   */
  sweep(now: Date = new Date()): Promise<SweepResult> {
    this.running ??= this.run(now).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Starts periodic runs; the next run is scheduled only when the previous one has ended. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule();
  }

  /** Stops scheduling and waits for a run in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.sweep()
        .then((result) => {
          if (result.transitions.length > 0) this.options.logger?.info({ transitions: result.transitions.length, more: result.more }, "agent liveness changed");
        })
        .catch((err) => this.options.logger?.warn({ err }, "liveness sweep failed"))
        .finally(() => this.schedule());
    }, this.options.intervalMs);
    this.timer.unref();
  }

  private async run(now: Date): Promise<SweepResult> {
    const batchSize = this.options.batchSize ?? 200;
    const maxBatches = this.options.maxBatchesPerRun ?? 20;
    const transitions: LivenessTransition[] = [];
    for (let batch = 0; batch < maxBatches; batch++) {
      const recorded = await this.db.transaction().execute(async (trx) => {
        if (!(await tryLockSweep(trx))) return undefined;
        const changed = await recordLivenessTransitions(trx, {
          now,
          staleAfterMs: this.options.staleAfterMs,
          offlineAfterMs: this.options.offlineAfterMs,
          limit: batchSize,
        });
        // One batch of records per tenant: the tenant's audit row (which revocations and every
        // other audited change wait for) is held for a few round trips, not three per agent.
        await appendAuditBatch(
          trx,
          changed.map((t) => ({
            tenantId: t.tenantId,
            actor: { kind: "system" as const },
            action: LIVENESS_CHANGED,
            target: `agent:${t.agentId}`,
            data: { from: t.from, to: t.to, last_seen_at: t.lastSeenAt ? t.lastSeenAt.toISOString() : null },
          })),
        );
        return changed;
      });
      if (recorded === undefined) return { swept: batch > 0, transitions, more: false };
      if (recorded.length > 0) this.options.onTransitions?.(recorded);
      transitions.push(...recorded);
      if (recorded.length < batchSize) return { swept: true, transitions, more: false };
    }
    return { swept: true, transitions, more: true };
  }
}
