import type { Kysely } from "kysely";
import type { Logger } from "pino";
import { appendAudit } from "../audit/audit-log.js";
import type { Bus, CommandsWithdrawn } from "../bus/bus.js";
import type { Executor } from "../db/database.js";
import type { Schema } from "../db/schema.js";
import { releaseWave, withdrawWaveDirectives } from "./rollout-directives.js";
import {
  failedMembers,
  failOpenMembers,
  getWave,
  listActiveRolloutIds,
  lockRolloutById,
  markMembersAtVersion,
  memberCounts,
  type RolloutRecord,
  tryLockVerifier,
  updateRollout,
  updateWave,
} from "./rollout-store.js";

/**
 * Decides from heartbeats (not from agents' claims) whether a wave reached the target version,
 * fails stragglers after the verify window, halts the train when a wave's failures exceed its
 * budget, completes the rollout and releases the next wave when auto-advance is due.
 */
export class RolloutVerifier {
  private timer: NodeJS.Timeout | undefined;
  private evaluating: Promise<void> | undefined;

  constructor(
    private readonly db: Kysely<Schema>,
    private readonly bus: Bus,
    private readonly logger: Logger,
    private readonly evaluateEveryMs = 1000,
  ) {}

  /** Starts the periodic pass. */
  start(): void {
    this.timer = setInterval(() => void this.evaluateSoon(), this.evaluateEveryMs);
    this.timer.unref();
  }

  /** Stops the periodic pass and waits for a running one. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.evaluating;
  }

  /** Runs one verifier pass now, unless one is running already (overlap guard). */
  evaluateSoon(): Promise<void> {
    this.evaluating ??= this.evaluate()
      .catch((err) => this.logger.warn({ err }, "rollout verification pass failed"))
      .finally(() => {
        this.evaluating = undefined;
      });
    return this.evaluating;
  }

  /**
   * One verifier pass over every running rollout. With several replicas only the one holding the
   * advisory lock evaluates; the others skip this round.
   */
  private async evaluate(): Promise<void> {
    const withdrawals: CommandsWithdrawn[] = [];
    const changed = await this.db.transaction().execute(async (trx) => {
      if (!(await tryLockVerifier(trx))) return [];
      // Halted rollouts are evaluated too, so their members' outcomes stay current while an
      // operator decides; only running ones change state.
      const candidates = await listActiveRolloutIds(trx);
      const touched: string[] = [];
      for (const id of candidates) {
        // Serialized with operator commands (which lock the row in RolloutService.mutate()): take
        // the row lock and read the state again, so a Cancel or Halt that committed meanwhile is
        // never undone and no wave is released for a rollout that is no longer RUNNING.
        const rollout = await lockRolloutById(trx, id);
        if (!rollout || (rollout.state !== "RUNNING" && rollout.state !== "HALTED")) continue;
        if (await evaluateRollout(trx, rollout, withdrawals)) touched.push(rollout.id);
      }
      return touched;
    });
    // The halts' withdrawals first: every replica stops delivering those directives at once.
    for (const withdrawn of withdrawals) await this.bus.publish("commands_withdrawn", withdrawn);
    for (const id of changed) await this.bus.publish("rollout_changed", id);
    if (changed.length > 0) await this.bus.publish("commands_queued", { scope: "all" });
  }
}

/** One rollout's pass; a halt's withdrawal is added to `withdrawals`, to be announced after commit. */
async function evaluateRollout(trx: Executor, rollout: RolloutRecord, withdrawals: CommandsWithdrawn[]): Promise<boolean> {
  const wave = await getWave(trx, rollout.id, rollout.currentWave);
  if (!wave) return false;
  const now = new Date();
  let changed = false;
  const live = wave.state === "IN_PROGRESS" || (rollout.state === "HALTED" && wave.state === "FAILED");
  if (live && wave.startedAt) {
    const reached = await markMembersAtVersion(trx, { rolloutId: rollout.id, wave: wave.index, targetVersion: rollout.targetVersion, since: wave.startedAt });
    changed ||= reached > 0;
    if (wave.verifyDeadline && now > wave.verifyDeadline) {
      const late = await failOpenMembers(trx, {
        rolloutId: rollout.id,
        wave: wave.index,
        reason: `did not report version ${rollout.targetVersion} with a fresh heartbeat within the verify window`,
      });
      changed ||= late > 0;
    }
    if (rollout.state !== "RUNNING") {
      if (changed) await updateRollout(trx, rollout.id);
      return changed;
    }
    const counts = await memberCounts(trx, rollout.id, wave.index);
    if (counts.failed > wave.failureBudget + wave.acceptedFailures) {
      const failures = await failedMembers(trx, rollout.id, wave.index, 10);
      const reason = `wave ${wave.name}: ${counts.failed} member(s) failed, budget ${wave.failureBudget}: ${failures.map((f) => `${f.agentId} (${f.reason})`).join("; ")}${counts.failed > failures.length ? "; …" : ""}`;
      await updateWave(trx, rollout.id, wave.index, { state: "FAILED" });
      await updateRollout(trx, rollout.id, { state: "HALTED", haltReason: reason });
      const withdrawn = await withdrawWaveDirectives(trx, rollout);
      if (withdrawn.notice) withdrawals.push(withdrawn.notice);
      await appendAudit(trx, {
        tenantId: rollout.tenantId,
        actor: { kind: "system" },
        action: "rollout.halted",
        target: `rollout:${rollout.id}`,
        data: { reason, withdrawn_directives: withdrawn.agents },
      });
      return true;
    }
    if (counts.open === 0) {
      await updateWave(trx, rollout.id, wave.index, { state: "SUCCEEDED", completedAt: now });
      wave.state = "SUCCEEDED";
      wave.completedAt = now;
      changed = true;
    }
  }
  // A RUNNING rollout whose current wave SUCCEEDED either completes (last wave) or waits for the
  // next one to be released. Decided from the state, not from the transition just above: a
  // wave also becomes SUCCEEDED outside this pass (Resume of a halted wave whose members had all
  // finished), and a rollout left RUNNING on a succeeded last wave would otherwise never finish
  // (Advance refuses, there is no further wave).
  if (rollout.state === "RUNNING" && wave.state === "SUCCEEDED") {
    const next = await getWave(trx, rollout.id, wave.index + 1);
    if (!next) {
      await updateRollout(trx, rollout.id, { state: "COMPLETED" });
      await appendAudit(trx, { tenantId: rollout.tenantId, actor: { kind: "system" }, action: "rollout.completed", target: `rollout:${rollout.id}` });
      return true;
    }
    if (rollout.autoAdvanceAfterMs > 0 && wave.completedAt && now.getTime() - wave.completedAt.getTime() >= rollout.autoAdvanceAfterMs) {
      await releaseWave(trx, rollout, next.index);
      await appendAudit(trx, { tenantId: rollout.tenantId, actor: { kind: "system" }, action: "rollout.advanced", target: `rollout:${rollout.id}`, data: { wave: next.index, automatic: true } });
      return true;
    }
  }
  if (changed) await updateRollout(trx, rollout.id);
  return changed;
}
