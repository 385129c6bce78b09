import { randomUUID } from "node:crypto";
import { toBinary } from "@bufbuild/protobuf";
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import { RolloutStage } from "../../gen/agentgateway/v1/control_pb.js";
import { type SignedReleaseManifest, SignedReleaseManifestSchema } from "../../gen/agentgateway/v1/release_pb.js";
import { listRolloutCandidates } from "../agents/agent-store.js";
import { type Actor, actorString, appendAudit } from "../audit/audit-log.js";
import type { Bus, CommandsWithdrawn } from "../bus/bus.js";
import { withdrawUnacked } from "../control/command-store.js";
import type { Executor } from "../db/database.js";
import { isUniqueViolation } from "../db/errors.js";
import type { RolloutStateName, Schema } from "../db/schema.js";
import { FailedPreconditionError, InvalidInputError, NotFoundError } from "../errors/errors.js";
import { verifySignedManifest } from "./manifest.js";
import { DEFAULT_WAVES, planWaves, type WavePlan, type WaveSpecInput } from "./plan.js";
import { directAgents, releaseWave, withdrawWaveDirectives } from "./rollout-directives.js";
import { getRollout, getWave, insertRollout, memberCounts, recordMemberReport, redirectMembers, type RolloutRecord, updateRollout, updateWave, waveMemberIds } from "./rollout-store.js";
import { RolloutVerifier } from "./rollout-verifier.js";

/** What an operator asks for. */
export interface RolloutSpecInput {
  signedManifest: SignedReleaseManifest;
  /** Operator labels (what targeting matches by default). */
  targetSelector: Record<string, string>;
  /** Host labels the agents claimed; only when the operator asks for them explicitly. */
  targetHostSelector: Record<string, string>;
  waves: WaveSpecInput[];
  autoAdvanceAfterMs: number;
}

const TERMINAL: RolloutStateName[] = ["COMPLETED", "CANCELLED"];

/**
 * Staged rollouts, the operator's side: planning, creating, and each command (start, advance,
 * halt, resume, cancel, retry) as one transaction on the locked rollout row, audited in it. The
 * decisions from heartbeats are the verifier's (rollout-verifier.ts), which this owns.
 */
export class RolloutService {
  readonly verifier: RolloutVerifier;

  constructor(
    private readonly db: Kysely<Schema>,
    private readonly bus: Bus,
    logger: Logger,
    evaluateEveryMs = 1000,
  ) {
    this.verifier = new RolloutVerifier(db, bus, logger, evaluateEveryMs);
  }

  /** Starts the periodic verifier. */
  startVerifier(): void {
    this.verifier.start();
  }

  /** Stops the verifier and waits for a running pass. */
  stopVerifier(): Promise<void> {
    return this.verifier.stop();
  }

  /** Runs one verifier pass now, unless one is running already. */
  evaluateSoon(): Promise<void> {
    return this.verifier.evaluateSoon();
  }

  /** The dry-run plan; fails closed on a bad manifest, an unknown key or an empty fleet. */
  async plan(tenantId: string, spec: RolloutSpecInput): Promise<WavePlan & { targetVersion: string; releaseKeyId: string }> {
    const verified = await verifySignedManifest(this.db, tenantId, spec.signedManifest);
    const waves = normalizeWaves(spec.waves);
    const candidates = await listRolloutCandidates(this.db, tenantId, { labels: spec.targetSelector, hostLabels: spec.targetHostSelector });
    const plan = planWaves(candidates, waves, verified.manifest.version);
    if (plan.waves.every((w) => w.members.length === 0)) {
      throw new FailedPreconditionError(
        candidates.length === 0 ? "no ACTIVE agents match the target selector" : `every targeted agent already runs ${verified.manifest.version}`,
      );
    }
    return { ...plan, targetVersion: verified.manifest.version, releaseKeyId: verified.releaseKeyId };
  }

  /** Creates a PLANNED rollout with its membership fixed now. */
  async create(tenantId: string, actor: Actor, spec: RolloutSpecInput): Promise<string> {
    const plan = await this.plan(tenantId, spec);
    const id = randomUUID();
    await this.db.transaction().execute(async (trx) => {
      await insertRollout(trx, {
        id,
        tenantId,
        targetVersion: plan.targetVersion,
        signedManifest: toBinary(SignedReleaseManifestSchema, spec.signedManifest),
        releaseKeyId: plan.releaseKeyId,
        autoAdvanceAfterMs: spec.autoAdvanceAfterMs,
        targetSelector: spec.targetSelector,
        createdBy: actorString(actor),
        waves: plan.waves,
      });
      await appendAudit(trx, {
        tenantId,
        actor,
        action: "rollout.created",
        target: `rollout:${id}`,
        data: {
          ...(Object.keys(spec.targetHostSelector).length > 0 ? { target_host_selector: spec.targetHostSelector } : {}),
          target_version: plan.targetVersion,
          waves: plan.waves.map((w) => ({ name: w.name, members: w.members.length })),
        },
      });
    });
    return id;
  }

  /** PLANNED → RUNNING and release the first wave. Only one rollout per tenant runs at a time. */
  async start(tenantId: string, actor: Actor, id: string): Promise<void> {
    try {
      await this.mutate(tenantId, id, async (trx, rollout) => {
        if (rollout.state !== "PLANNED") throw new FailedPreconditionError(`cannot start a rollout in state ${rollout.state}`);
        await updateRollout(trx, id, { state: "RUNNING" });
        await releaseWave(trx, { ...rollout, state: "RUNNING" }, 0);
        await appendAudit(trx, { tenantId, actor, action: "rollout.started", target: `rollout:${id}` });
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw new FailedPreconditionError("another rollout of this tenant is running or halted: finish or cancel it first");
      throw err;
    }
  }

  /** Releases the next wave once the current one has succeeded. */
  async advance(tenantId: string, actor: Actor, id: string): Promise<void> {
    await this.mutate(tenantId, id, async (trx, rollout) => {
      if (rollout.state === "HALTED") throw new FailedPreconditionError(`rollout is halted (${rollout.haltReason}): resume it with a note first`);
      if (rollout.state !== "RUNNING") throw new FailedPreconditionError(`cannot advance a rollout in state ${rollout.state}`);
      const current = await getWave(trx, id, rollout.currentWave);
      if (!current) throw new Error(`rollout ${id} has no wave ${rollout.currentWave}`);
      if (current.state !== "SUCCEEDED") throw new FailedPreconditionError(`wave ${current.name} has not completed yet (${current.state})`);
      const next = rollout.currentWave + 1;
      if (!(await getWave(trx, id, next))) throw new FailedPreconditionError("there is no further wave");
      await releaseWave(trx, rollout, next);
      await appendAudit(trx, { tenantId, actor, action: "rollout.advanced", target: `rollout:${id}`, data: { wave: next } });
    });
  }

  /**
   * Stops releasing waves and withdraws the current wave's directives no agent has acknowledged
   * yet (withdrawWaveDirectives). A halted rollout keeps its first reason.
   */
  async halt(tenantId: string, actor: Actor, id: string, reason: string): Promise<void> {
    await this.mutate(tenantId, id, async (trx, rollout, withdrew) => {
      if (rollout.state === "HALTED") return;
      if (rollout.state !== "RUNNING") throw new FailedPreconditionError(`cannot halt a rollout in state ${rollout.state}`);
      await updateRollout(trx, id, { state: "HALTED", haltReason: reason });
      const withdrawn = await withdrawWaveDirectives(trx, rollout);
      await appendAudit(trx, { tenantId, actor, action: "rollout.halted", target: `rollout:${id}`, data: { reason, withdrawn_directives: withdrawn.agents } });
      withdrew(withdrawn.notice);
    });
  }

  /**
   * Moves past a halt with a recorded note: the halted wave's current failures are accepted (they
   * no longer count against its budget), the members whose directive the halt withdrew (PENDING,
   * nothing reported since) are directed again with a fresh verify window, and the rollout runs again.
   */
  async resume(tenantId: string, actor: Actor, id: string, note: string): Promise<void> {
    if (!note.trim()) throw new InvalidInputError("a resume needs a note saying why it is safe to go on");
    await this.mutate(tenantId, id, async (trx, rollout) => {
      if (rollout.state !== "HALTED") throw new FailedPreconditionError(`cannot resume a rollout in state ${rollout.state}`);
      const wave = await getWave(trx, id, rollout.currentWave);
      if (!wave) throw new Error(`rollout ${id} has no wave ${rollout.currentWave}`);
      const withdrawn = await waveMemberIds(trx, id, rollout.currentWave, "PENDING");
      if (withdrawn.length > 0) {
        await redirectMembers(trx, id, withdrawn);
        await directAgents(trx, rollout, rollout.currentWave, withdrawn);
      }
      const counts = await memberCounts(trx, id, rollout.currentWave);
      await updateWave(trx, id, rollout.currentWave, {
        acceptedFailures: counts.failed,
        ...(counts.open === 0 ? { state: "SUCCEEDED", completedAt: new Date() } : { state: "IN_PROGRESS" }),
        ...(withdrawn.length > 0 ? { verifyDeadline: new Date(Date.now() + wave.verifyWindowMs) } : {}),
      });
      await updateRollout(trx, id, { state: "RUNNING", haltReason: null, appendResumeNote: note });
      await appendAudit(trx, {
        tenantId,
        actor,
        action: "rollout.resumed",
        target: `rollout:${id}`,
        data: { note, accepted_failures: counts.failed, redirected_members: withdrawn.length },
      });
    });
    // The verifier decides what follows (complete a finished last wave, or go on verifying): now,
    // not at its next tick.
    void this.verifier.evaluateSoon();
  }

  /** Stops the rollout for good and withdraws directives no agent has received yet. */
  async cancel(tenantId: string, actor: Actor, id: string, reason: string): Promise<void> {
    await this.mutate(tenantId, id, async (trx, rollout, withdrew) => {
      if (TERMINAL.includes(rollout.state)) throw new FailedPreconditionError(`rollout is already ${rollout.state}`);
      await updateRollout(trx, id, { state: "CANCELLED" });
      const withdrawal = await withdrawUnacked(trx, { tenantId, kind: "rollout", ref: id, reason: "withdrawn: rollout cancelled" });
      await appendAudit(trx, { tenantId, actor, action: "rollout.cancelled", target: `rollout:${id}`, data: { reason } });
      withdrew(withdrawal.notice);
    });
  }

  /** Sends the directive again to the current wave's failed members and restarts its verify window. */
  async retryFailed(tenantId: string, actor: Actor, id: string): Promise<void> {
    await this.mutate(tenantId, id, async (trx, rollout) => {
      if (rollout.state !== "RUNNING" && rollout.state !== "HALTED") throw new FailedPreconditionError(`cannot retry members of a rollout in state ${rollout.state}`);
      const ids = await waveMemberIds(trx, id, rollout.currentWave, "FAILED");
      if (ids.length === 0) throw new FailedPreconditionError("the current wave has no failed members");
      const wave = await getWave(trx, id, rollout.currentWave);
      if (!wave) throw new Error(`rollout ${id} has no wave ${rollout.currentWave}`);
      await redirectMembers(trx, id, ids);
      await updateWave(trx, id, rollout.currentWave, { state: "IN_PROGRESS", completedAt: null, verifyDeadline: new Date(Date.now() + wave.verifyWindowMs) });
      await directAgents(trx, rollout, rollout.currentWave, ids);
      await appendAudit(trx, { tenantId, actor, action: "rollout.members_retried", target: `rollout:${id}`, data: { agents: ids } });
    });
  }

  /** Records what an agent reported on its stream. SUCCEEDED is not trusted: heartbeats decide. */
  async recordProgress(input: { tenantId: string; agentId: string; rolloutId: string; stage: RolloutStage; message: string }): Promise<void> {
    const failed = input.stage === RolloutStage.FAILED;
    const changed = await recordMemberReport(this.db, {
      tenantId: input.tenantId,
      agentId: input.agentId,
      rolloutId: input.rolloutId,
      state: failed ? "FAILED" : "APPLYING",
      reason: failed ? input.message || "the agent reported a failure" : "",
    });
    if (changed) {
      await this.bus.publish("rollout_changed", input.rolloutId);
      if (failed) void this.verifier.evaluateSoon();
    }
  }

  /**
   * Locks the rollout row for the change, runs it, and announces it after commit: first the
   * commands it withdrew, if any (so every replica stops delivering them at once), then the rest.
   */
  private async mutate(
    tenantId: string,
    id: string,
    change: (trx: Executor, rollout: RolloutRecord, withdrew: (notice: CommandsWithdrawn | undefined) => void) => Promise<void>,
  ): Promise<void> {
    let withdrawn: CommandsWithdrawn | undefined;
    await this.db.transaction().execute(async (trx) => {
      const rollout = await getRollout(trx, tenantId, id, true);
      if (!rollout) throw new NotFoundError(`no rollout ${id}`);
      await change(trx, rollout, (notice) => {
        withdrawn = notice;
      });
    });
    if (withdrawn) await this.bus.publish("commands_withdrawn", withdrawn);
    await this.bus.publish("rollout_changed", id);
    await this.bus.publish("commands_queued", { scope: "tenant", tenantId });
  }
}

/** Fills defaults and checks the waves make sense together. */
export function normalizeWaves(waves: WaveSpecInput[]): WaveSpecInput[] {
  if (waves.length === 0) return DEFAULT_WAVES;
  let previous = 0;
  for (const wave of waves) {
    if (Object.keys(wave.labelSelector).length > 0) continue;
    if (wave.cumulativePercent < previous) throw new InvalidInputError(`wave ${wave.name}: cumulative_percent must not decrease (${wave.cumulativePercent} < ${previous})`);
    previous = wave.cumulativePercent;
  }
  const names = new Set(waves.map((w) => w.name));
  if (names.size !== waves.length) throw new InvalidInputError("wave names must be unique");
  return waves;
}
