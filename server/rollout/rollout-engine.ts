import { randomUUID } from "node:crypto";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Kysely, sql, type Transaction } from "kysely";
import type { Logger } from "pino";
import { RolloutStage } from "../../gen/agentgateway/v1/control_pb.js";
import { type SignedReleaseManifest, SignedReleaseManifestSchema } from "../../gen/agentgateway/v1/release_pb.js";
import { type Actor, appendAudit } from "../audit/audit-log.js";
import type { Bus } from "../bus/bus.js";
import { enqueueForAgents, withdrawUnacked } from "../control/command-store.js";
import { rolloutDirectiveBody } from "../control/commands.js";
import { isUniqueViolation } from "../db/errors.js";
import type { RolloutStateName, Schema } from "../db/schema.js";
import { FailedPreconditionError, InvalidInputError, NotFoundError } from "../errors/errors.js";
import { verifySignedManifest } from "./manifest.js";
import { DEFAULT_WAVES, planWaves, type WavePlan, type WaveSpecInput } from "./plan.js";

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
const OPEN_MEMBER_STATES = ["PENDING", "DIRECTED", "APPLYING"] as const;

/**
 * Staged rollouts: planning, releasing waves as persisted directives, recording progress, and
 * the verifier that decides from heartbeats (not from agents' claims) whether a wave reached the
 * target version, halting the train when a wave's failures exceed its budget.
 */
export class RolloutEngine {
  private timer: NodeJS.Timeout | undefined;
  private evaluating: Promise<void> | undefined;

  constructor(
    private readonly db: Kysely<Schema>,
    private readonly bus: Bus,
    private readonly logger: Logger,
    private readonly evaluateEveryMs = 1000,
  ) {}

  /** Starts the periodic verifier. */
  startVerifier(): void {
    this.timer = setInterval(() => void this.evaluateSoon(), this.evaluateEveryMs);
    this.timer.unref();
  }

  /** Stops the verifier and waits for a running pass. */
  async stopVerifier(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.evaluating;
  }

  /** The dry-run plan; fails closed on a bad manifest, an unknown key or an empty fleet. */
  async plan(tenantId: string, spec: RolloutSpecInput): Promise<WavePlan & { targetVersion: string; releaseKeyId: string }> {
    const verified = await verifySignedManifest(this.db, tenantId, spec.signedManifest);
    const waves = normalizeWaves(spec.waves);
    let query = this.db.selectFrom("agents").select(["id", "labels", "agent_version"]).where("tenant_id", "=", tenantId).where("state", "=", "ACTIVE");
    if (Object.keys(spec.targetSelector).length > 0) query = query.where(sql<boolean>`labels @> ${JSON.stringify(spec.targetSelector)}::jsonb`);
    if (Object.keys(spec.targetHostSelector).length > 0) query = query.where(sql<boolean>`host_labels @> ${JSON.stringify(spec.targetHostSelector)}::jsonb`);
    const candidates = (await query.execute()).map((r) => ({ id: r.id, labels: r.labels, agentVersion: r.agent_version }));
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
      await trx
        .insertInto("rollouts")
        .values({
          id,
          tenant_id: tenantId,
          target_version: plan.targetVersion,
          signed_manifest: toBinary(SignedReleaseManifestSchema, spec.signedManifest),
          release_key_id: plan.releaseKeyId,
          state: "PLANNED",
          auto_advance_after_ms: spec.autoAdvanceAfterMs,
          target_selector: JSON.stringify(spec.targetSelector),
          created_by: actorName(actor),
        })
        .execute();
      await trx
        .insertInto("rollout_waves")
        .values(plan.waves.map((w, index) => ({ rollout_id: id, index, name: w.name, state: "PENDING" as const, failure_budget: w.failureBudget, verify_window_ms: w.verifyWindowMs })))
        .execute();
      const members = plan.waves.flatMap((w, wave) => w.members.map((agentId) => ({ rollout_id: id, agent_id: agentId, tenant_id: tenantId, wave, state: "PENDING" as const })));
      for (let i = 0; i < members.length; i += 1000) await trx.insertInto("rollout_members").values(members.slice(i, i + 1000)).execute();
      await appendAudit(trx, {
        tenantId,
        actor,
        action: "rollout.created",
        target: `rollout:${id}`,
        data: {
          ...(Object.keys(spec.targetHostSelector).length > 0 ? { target_host_selector: spec.targetHostSelector } : {}),
          target_version: plan.targetVersion,
          waves: plan.waves.map((w) => ({ name: w.name, members: w.members.length })) },
      });
    });
    return id;
  }

  /** PLANNED → RUNNING and release the first wave. Only one rollout per tenant runs at a time. */
  async start(tenantId: string, actor: Actor, id: string): Promise<void> {
    try {
      await this.mutate(tenantId, id, async (trx, rollout) => {
        if (rollout.state !== "PLANNED") throw new FailedPreconditionError(`cannot start a rollout in state ${rollout.state}`);
        await trx.updateTable("rollouts").set({ state: "RUNNING", updated_at: new Date() }).where("id", "=", id).execute();
        await this.releaseWave(trx, { ...rollout, state: "RUNNING" }, 0);
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
      if (rollout.state === "HALTED") throw new FailedPreconditionError(`rollout is halted (${rollout.halt_reason}): resume it with a note first`);
      if (rollout.state !== "RUNNING") throw new FailedPreconditionError(`cannot advance a rollout in state ${rollout.state}`);
      const current = await trx.selectFrom("rollout_waves").select(["state", "name"]).where("rollout_id", "=", id).where("index", "=", rollout.current_wave).executeTakeFirstOrThrow();
      if (current.state !== "SUCCEEDED") throw new FailedPreconditionError(`wave ${current.name} has not completed yet (${current.state})`);
      const next = rollout.current_wave + 1;
      const exists = await trx.selectFrom("rollout_waves").select("index").where("rollout_id", "=", id).where("index", "=", next).executeTakeFirst();
      if (!exists) throw new FailedPreconditionError("there is no further wave");
      await this.releaseWave(trx, rollout, next);
      await appendAudit(trx, { tenantId, actor, action: "rollout.advanced", target: `rollout:${id}`, data: { wave: next } });
    });
  }

  /** Stops releasing waves. A halted rollout keeps its first reason. */
  async halt(tenantId: string, actor: Actor, id: string, reason: string): Promise<void> {
    await this.mutate(tenantId, id, async (trx, rollout) => {
      if (rollout.state === "HALTED") return;
      if (rollout.state !== "RUNNING") throw new FailedPreconditionError(`cannot halt a rollout in state ${rollout.state}`);
      await trx.updateTable("rollouts").set({ state: "HALTED", halt_reason: reason, updated_at: new Date() }).where("id", "=", id).execute();
      await appendAudit(trx, { tenantId, actor, action: "rollout.halted", target: `rollout:${id}`, data: { reason } });
    });
  }

  /**
   * Moves past a halt with a recorded note: the halted wave's current failures are accepted (they
   * no longer count against its budget), and the rollout runs again.
   */
  async resume(tenantId: string, actor: Actor, id: string, note: string): Promise<void> {
    if (!note.trim()) throw new InvalidInputError("a resume needs a note saying why it is safe to go on");
    await this.mutate(tenantId, id, async (trx, rollout) => {
      if (rollout.state !== "HALTED") throw new FailedPreconditionError(`cannot resume a rollout in state ${rollout.state}`);
      const counts = await this.memberCounts(trx, id, rollout.current_wave);
      await trx
        .updateTable("rollout_waves")
        .set({
          accepted_failures: counts.failed,
          ...(counts.open === 0 ? { state: "SUCCEEDED", completed_at: new Date() } : { state: "IN_PROGRESS" }),
        })
        .where("rollout_id", "=", id)
        .where("index", "=", rollout.current_wave)
        .execute();
      await trx
        .updateTable("rollouts")
        .set({ state: "RUNNING", halt_reason: null, resume_notes: sql`resume_notes || ${JSON.stringify([note])}::jsonb`, updated_at: new Date() })
        .where("id", "=", id)
        .execute();
      await appendAudit(trx, { tenantId, actor, action: "rollout.resumed", target: `rollout:${id}`, data: { note, accepted_failures: counts.failed } });
    });
  }

  /** Stops the rollout for good and withdraws directives no agent has received yet. */
  async cancel(tenantId: string, actor: Actor, id: string, reason: string): Promise<void> {
    await this.mutate(tenantId, id, async (trx, rollout) => {
      if (TERMINAL.includes(rollout.state)) throw new FailedPreconditionError(`rollout is already ${rollout.state}`);
      await trx.updateTable("rollouts").set({ state: "CANCELLED", updated_at: new Date() }).where("id", "=", id).execute();
      await withdrawUnacked(trx, { tenantId, kind: "rollout", ref: id, reason: "rollout cancelled" });
      await appendAudit(trx, { tenantId, actor, action: "rollout.cancelled", target: `rollout:${id}`, data: { reason } });
    });
  }

  /** Sends the directive again to the current wave's failed members and restarts its verify window. */
  async retryFailed(tenantId: string, actor: Actor, id: string): Promise<void> {
    await this.mutate(tenantId, id, async (trx, rollout) => {
      if (rollout.state !== "RUNNING" && rollout.state !== "HALTED") throw new FailedPreconditionError(`cannot retry members of a rollout in state ${rollout.state}`);
      const failed = await trx.selectFrom("rollout_members").select("agent_id").where("rollout_id", "=", id).where("wave", "=", rollout.current_wave).where("state", "=", "FAILED").execute();
      if (failed.length === 0) throw new FailedPreconditionError("the current wave has no failed members");
      const ids = failed.map((f) => f.agent_id);
      const wave = await trx.selectFrom("rollout_waves").select(["verify_window_ms"]).where("rollout_id", "=", id).where("index", "=", rollout.current_wave).executeTakeFirstOrThrow();
      await trx.updateTable("rollout_members").set({ state: "DIRECTED", reason: "", straggler: false, updated_at: new Date() }).where("rollout_id", "=", id).where("agent_id", "in", ids).execute();
      await trx
        .updateTable("rollout_waves")
        .set({ state: "IN_PROGRESS", completed_at: null, verify_deadline: new Date(Date.now() + wave.verify_window_ms) })
        .where("rollout_id", "=", id)
        .where("index", "=", rollout.current_wave)
        .execute();
      await this.direct(trx, rollout, rollout.current_wave, ids);
      await appendAudit(trx, { tenantId, actor, action: "rollout.members_retried", target: `rollout:${id}`, data: { agents: ids } });
    });
  }

  /** Records what an agent reported on its stream. SUCCEEDED is not trusted: heartbeats decide. */
  async recordProgress(input: { tenantId: string; agentId: string; rolloutId: string; stage: RolloutStage; message: string }): Promise<void> {
    const failed = input.stage === RolloutStage.FAILED;
    const result = await this.db
      .updateTable("rollout_members")
      .set({ state: failed ? "FAILED" : "APPLYING", reason: failed ? input.message || "the agent reported a failure" : "", updated_at: new Date() })
      .where("rollout_id", "=", input.rolloutId)
      .where("agent_id", "=", input.agentId)
      .where("tenant_id", "=", input.tenantId)
      .where("state", "in", ["DIRECTED", "APPLYING"])
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) > 0) {
      await this.bus.publish("rollout_changed", input.rolloutId);
      if (failed) void this.evaluateSoon();
    }
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
    const changed = await this.db.transaction().execute(async (trx) => {
      const lock = await sql<{ locked: boolean }>`select pg_try_advisory_xact_lock(7243001) as locked`.execute(trx);
      if (!lock.rows[0]?.locked) return [];
      // Halted rollouts are evaluated too, so their members' outcomes stay current while an
      // operator decides; only running ones change state.
      const candidates = await trx.selectFrom("rollouts").select("id").where("state", "in", ["RUNNING", "HALTED"]).orderBy("id").execute();
      const touched: string[] = [];
      for (const { id } of candidates) {
        // Serialized with operator commands (which lock the row in mutate()): take the row lock
        // and read the state again, so a Cancel or Halt that committed meanwhile is never undone
        // and no wave is released for a rollout that is no longer RUNNING.
        const rollout = await trx.selectFrom("rollouts").selectAll().where("id", "=", id).forUpdate().executeTakeFirst();
        if (!rollout || (rollout.state !== "RUNNING" && rollout.state !== "HALTED")) continue;
        if (await this.evaluateRollout(trx, rollout)) touched.push(rollout.id);
      }
      return touched;
    });
    for (const id of changed) await this.bus.publish("rollout_changed", id);
    if (changed.length > 0) await this.bus.publish("commands_queued", { scope: "all" });
  }

  private async evaluateRollout(trx: Transaction<Schema>, rollout: RolloutRow): Promise<boolean> {
    const wave = await trx.selectFrom("rollout_waves").selectAll().where("rollout_id", "=", rollout.id).where("index", "=", rollout.current_wave).executeTakeFirst();
    if (!wave) return false;
    const now = new Date();
    let changed = false;
    const live = wave.state === "IN_PROGRESS" || (rollout.state === "HALTED" && wave.state === "FAILED");
    if (live && wave.started_at) {
      const reached = await sql`
        update rollout_members m set state = 'SUCCEEDED', reason = '', updated_at = now()
        from agents a
        where m.rollout_id = ${rollout.id} and m.wave = ${wave.index} and m.state in ('DIRECTED', 'APPLYING')
          and a.id = m.agent_id and a.agent_version = ${rollout.target_version} and a.last_seen_at >= ${wave.started_at}`.execute(trx);
      changed ||= Number(reached.numAffectedRows ?? 0) > 0;
      if (wave.verify_deadline && now > wave.verify_deadline) {
        const late = await trx
          .updateTable("rollout_members")
          .set({ state: "FAILED", straggler: true, reason: `did not report version ${rollout.target_version} with a fresh heartbeat within the verify window`, updated_at: now })
          .where("rollout_id", "=", rollout.id)
          .where("wave", "=", wave.index)
          .where("state", "in", [...OPEN_MEMBER_STATES])
          .executeTakeFirst();
        changed ||= Number(late.numUpdatedRows) > 0;
      }
      if (rollout.state !== "RUNNING") {
        if (changed) await trx.updateTable("rollouts").set({ updated_at: now }).where("id", "=", rollout.id).execute();
        return changed;
      }
      const counts = await this.memberCounts(trx, rollout.id, wave.index);
      if (counts.failed > wave.failure_budget + wave.accepted_failures) {
        const failures = await trx.selectFrom("rollout_members").select(["agent_id", "reason"]).where("rollout_id", "=", rollout.id).where("wave", "=", wave.index).where("state", "=", "FAILED").orderBy("agent_id").limit(10).execute();
        const reason = `wave ${wave.name}: ${counts.failed} member(s) failed, budget ${wave.failure_budget}: ${failures.map((f) => `${f.agent_id} (${f.reason})`).join("; ")}${counts.failed > failures.length ? "; …" : ""}`;
        await trx.updateTable("rollout_waves").set({ state: "FAILED" }).where("rollout_id", "=", rollout.id).where("index", "=", wave.index).execute();
        await trx.updateTable("rollouts").set({ state: "HALTED", halt_reason: reason, updated_at: now }).where("id", "=", rollout.id).execute();
        await appendAudit(trx, { tenantId: rollout.tenant_id, actor: { kind: "system" }, action: "rollout.halted", target: `rollout:${rollout.id}`, data: { reason } });
        return true;
      }
      if (counts.open === 0) {
        await trx.updateTable("rollout_waves").set({ state: "SUCCEEDED", completed_at: now }).where("rollout_id", "=", rollout.id).where("index", "=", wave.index).execute();
        wave.state = "SUCCEEDED";
        wave.completed_at = now;
        changed = true;
        const isLast = !(await trx.selectFrom("rollout_waves").select("index").where("rollout_id", "=", rollout.id).where("index", "=", wave.index + 1).executeTakeFirst());
        if (isLast) {
          await trx.updateTable("rollouts").set({ state: "COMPLETED", updated_at: now }).where("id", "=", rollout.id).execute();
          await appendAudit(trx, { tenantId: rollout.tenant_id, actor: { kind: "system" }, action: "rollout.completed", target: `rollout:${rollout.id}` });
          return true;
        }
      }
    }
    if (rollout.state === "RUNNING" && wave.state === "SUCCEEDED" && rollout.auto_advance_after_ms > 0 && wave.completed_at && now.getTime() - wave.completed_at.getTime() >= rollout.auto_advance_after_ms) {
      const next = await trx.selectFrom("rollout_waves").select("index").where("rollout_id", "=", rollout.id).where("index", "=", wave.index + 1).executeTakeFirst();
      if (next) {
        await this.releaseWave(trx, rollout, next.index);
        await appendAudit(trx, { tenantId: rollout.tenant_id, actor: { kind: "system" }, action: "rollout.advanced", target: `rollout:${rollout.id}`, data: { wave: next.index, automatic: true } });
        return true;
      }
    }
    if (changed) await trx.updateTable("rollouts").set({ updated_at: now }).where("id", "=", rollout.id).execute();
    return changed;
  }

  /** Marks the wave in progress and queues the signed directive for each member. */
  private async releaseWave(trx: Transaction<Schema>, rollout: RolloutRow, index: number): Promise<void> {
    const wave = await trx.selectFrom("rollout_waves").select(["verify_window_ms"]).where("rollout_id", "=", rollout.id).where("index", "=", index).executeTakeFirstOrThrow();
    const now = new Date();
    await trx
      .updateTable("rollout_waves")
      .set({ state: "IN_PROGRESS", started_at: now, verify_deadline: new Date(now.getTime() + wave.verify_window_ms) })
      .where("rollout_id", "=", rollout.id)
      .where("index", "=", index)
      .execute();
    await trx.updateTable("rollouts").set({ current_wave: index, updated_at: now }).where("id", "=", rollout.id).execute();
    const members = await trx.selectFrom("rollout_members").select("agent_id").where("rollout_id", "=", rollout.id).where("wave", "=", index).execute();
    const ids = members.map((m) => m.agent_id);
    await trx.updateTable("rollout_members").set({ state: "DIRECTED", updated_at: now }).where("rollout_id", "=", rollout.id).where("wave", "=", index).execute();
    await this.direct(trx, rollout, index, ids);
  }

  private async direct(trx: Transaction<Schema>, rollout: RolloutRow, wave: number, agentIds: string[]): Promise<void> {
    const signedManifest = fromBinary(SignedReleaseManifestSchema, rollout.signed_manifest);
    const body = rolloutDirectiveBody({ rolloutId: rollout.id, wave, signedManifest });
    await enqueueForAgents(trx, { tenantId: rollout.tenant_id, agentIds, kind: "rollout", ref: rollout.id, body });
  }

  private async memberCounts(trx: Transaction<Schema>, id: string, wave: number): Promise<{ open: number; failed: number; succeeded: number }> {
    const rows = await trx
      .selectFrom("rollout_members")
      .select(["state", sql<number>`count(*)::int`.as("n")])
      .where("rollout_id", "=", id)
      .where("wave", "=", wave)
      .groupBy("state")
      .execute();
    const count = (states: string[]) => rows.filter((r) => states.includes(r.state)).reduce((sum, r) => sum + Number(r.n), 0);
    return { open: count([...OPEN_MEMBER_STATES]), failed: count(["FAILED"]), succeeded: count(["SUCCEEDED"]) };
  }

  /** Locks the rollout row for the change, runs it, and announces it after commit. */
  private async mutate(tenantId: string, id: string, change: (trx: Transaction<Schema>, rollout: RolloutRow) => Promise<void>): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const rollout = await trx.selectFrom("rollouts").selectAll().where("tenant_id", "=", tenantId).where("id", "=", id).forUpdate().executeTakeFirst();
      if (!rollout) throw new NotFoundError(`no rollout ${id}`);
      await change(trx, rollout);
    });
    await this.bus.publish("rollout_changed", id);
    await this.bus.publish("commands_queued", { scope: "tenant", tenantId });
  }
}

interface RolloutRow {
  id: string;
  tenant_id: string;
  target_version: string;
  signed_manifest: Uint8Array;
  state: RolloutStateName;
  current_wave: number;
  halt_reason: string | null;
  auto_advance_after_ms: number;
}

function actorName(actor: Actor): string {
  return actor.kind === "operator" ? `operator:${actor.keyId}` : actor.kind === "agent" ? `agent:${actor.agentId}` : "system";
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
