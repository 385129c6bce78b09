import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { MemberState, type RolloutSchema, RolloutState, WaveState } from "../../gen/agentgateway/admin/v1/rollouts_pb.js";
import type { Executor } from "../db/database.js";
import type { MemberStateName, RolloutStateName, WaveStateName } from "../db/schema.js";
import { NotFoundError } from "../errors/errors.js";
import { getRollout, listMembers, listWaves } from "./rollout-store.js";

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
  const rollout = await getRollout(db, tenantId, id);
  if (!rollout) throw new NotFoundError(`no rollout ${id}`);
  const [waves, members] = await Promise.all([listWaves(db, id), listMembers(db, id)]);
  return {
    id: rollout.id,
    targetVersion: rollout.targetVersion,
    state: ROLLOUT_STATE[rollout.state],
    currentWave: rollout.currentWave,
    haltReason: rollout.haltReason ?? "",
    resumeNotes: rollout.resumeNotes,
    createdAt: timestampFromDate(rollout.createdAt),
    updatedAt: timestampFromDate(rollout.updatedAt),
    autoAdvanceAfter: durationFromMs(rollout.autoAdvanceAfterMs),
    failures: members.filter((m) => m.state === "FAILED").map((m) => ({ agentId: m.agentId, wave: m.wave, reason: m.reason })),
    waves: waves.map((w) => {
      const inWave = members.filter((m) => m.wave === w.index);
      const count = (...states: MemberStateName[]) => inWave.filter((m) => states.includes(m.state)).length;
      return {
        index: w.index,
        name: w.name,
        state: WAVE_STATE[w.state],
        memberIds: inWave.map((m) => m.agentId),
        pending: count("PENDING", "DIRECTED"),
        applying: count("APPLYING"),
        succeeded: count("SUCCEEDED"),
        failed: count("FAILED"),
        stragglerIds: inWave.filter((m) => m.straggler).map((m) => m.agentId),
        startedAt: w.startedAt ? timestampFromDate(w.startedAt) : undefined,
        verifyDeadline: w.verifyDeadline ? timestampFromDate(w.verifyDeadline) : undefined,
      };
    }),
  };
}
