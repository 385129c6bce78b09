import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { MemberState, type RolloutSchema, RolloutState, WaveState } from "../../gen/agentgateway/admin/v1/rollouts_pb.js";
import type { Executor } from "../db/database.js";
import type { MemberStateName, RolloutStateName, WaveStateName } from "../db/schema.js";
import { NotFoundError } from "../errors/errors.js";

const ROLLOUT_STATE: Record<RolloutStateName, RolloutState> = {
  PLANNED: RolloutState.PLANNED,
  RUNNING: RolloutState.RUNNING,
  HALTED: RolloutState.HALTED,
  COMPLETED: RolloutState.COMPLETED,
  CANCELLED: RolloutState.CANCELLED,
};
const WAVE_STATE: Record<WaveStateName, WaveState> = {
  PENDING: WaveState.PENDING,
  IN_PROGRESS: WaveState.IN_PROGRESS,
  SUCCEEDED: WaveState.SUCCEEDED,
  FAILED: WaveState.FAILED,
};
/** Member state names as the proto enum (exported for the CLI/web views' tests). */
export const MEMBER_STATE: Record<MemberStateName, MemberState> = {
  PENDING: MemberState.PENDING,
  DIRECTED: MemberState.DIRECTED,
  APPLYING: MemberState.APPLYING,
  SUCCEEDED: MemberState.SUCCEEDED,
  FAILED: MemberState.FAILED,
};

/** Whether a rollout can still change. */
export function isTerminal(state: RolloutState): boolean {
  return state === RolloutState.COMPLETED || state === RolloutState.CANCELLED;
}

/** The whole rollout as the admin API shows it: waves with counts, stragglers and failures. */
export async function loadRolloutView(db: Executor, tenantId: string, id: string): Promise<MessageInitShape<typeof RolloutSchema>> {
  const rollout = await db.selectFrom("rollouts").selectAll().where("tenant_id", "=", tenantId).where("id", "=", id).executeTakeFirst();
  if (!rollout) throw new NotFoundError(`no rollout ${id}`);
  const [waves, members] = await Promise.all([
    db.selectFrom("rollout_waves").selectAll().where("rollout_id", "=", id).orderBy("index").execute(),
    db.selectFrom("rollout_members").select(["agent_id", "wave", "state", "reason", "straggler"]).where("rollout_id", "=", id).orderBy("agent_id").execute(),
  ]);
  return {
    id: rollout.id,
    targetVersion: rollout.target_version,
    state: ROLLOUT_STATE[rollout.state],
    currentWave: rollout.current_wave,
    haltReason: rollout.halt_reason ?? "",
    resumeNotes: rollout.resume_notes,
    createdAt: timestampFromDate(rollout.created_at),
    updatedAt: timestampFromDate(rollout.updated_at),
    autoAdvanceAfter: durationFromMs(rollout.auto_advance_after_ms),
    failures: members.filter((m) => m.state === "FAILED").map((m) => ({ agentId: m.agent_id, wave: m.wave, reason: m.reason })),
    waves: waves.map((w) => {
      const inWave = members.filter((m) => m.wave === w.index);
      const count = (...states: MemberStateName[]) => inWave.filter((m) => states.includes(m.state)).length;
      return {
        index: w.index,
        name: w.name,
        state: WAVE_STATE[w.state],
        memberIds: inWave.map((m) => m.agent_id),
        pending: count("PENDING", "DIRECTED"),
        applying: count("APPLYING"),
        succeeded: count("SUCCEEDED"),
        failed: count("FAILED"),
        stragglerIds: inWave.filter((m) => m.straggler).map((m) => m.agent_id),
        startedAt: w.started_at ? timestampFromDate(w.started_at) : undefined,
        verifyDeadline: w.verify_deadline ? timestampFromDate(w.verify_deadline) : undefined,
      };
    }),
  };
}
