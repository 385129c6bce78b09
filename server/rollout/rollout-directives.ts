import { fromBinary } from "@bufbuild/protobuf";
import { SignedReleaseManifestSchema } from "../../gen/agentgateway/v1/release_pb.js";
import type { CommandsWithdrawn } from "../bus/bus.js";
import { enqueueForAgents, withdrawUnacked } from "../control/command-store.js";
import { rolloutDirectiveBody } from "../control/commands.js";
import type { Executor } from "../db/database.js";
import { directWaveMembers, getWave, parkMembers, type RolloutRecord, updateRollout, updateWave, waveMemberIds } from "./rollout-store.js";

// Releasing a wave is shared by the operator's start/advance (rollout-service.ts) and the
// verifier's automatic advance (rollout-verifier.ts), so both release it the same way.

/** Marks the wave in progress, makes it the current one, and queues the signed directive for each member. */
export async function releaseWave(trx: Executor, rollout: RolloutRecord, index: number): Promise<void> {
  const wave = await getWave(trx, rollout.id, index);
  if (!wave) throw new Error(`rollout ${rollout.id} has no wave ${index}`);
  const now = new Date();
  await updateWave(trx, rollout.id, index, { state: "IN_PROGRESS", startedAt: now, verifyDeadline: new Date(now.getTime() + wave.verifyWindowMs) });
  await updateRollout(trx, rollout.id, { currentWave: index });
  const ids = await waveMemberIds(trx, rollout.id, index);
  await directWaveMembers(trx, rollout.id, index);
  await directAgents(trx, rollout, index, ids);
}

/** Queues the rollout's signed directive for these agents (persisted, acknowledged commands). */
export async function directAgents(trx: Executor, rollout: RolloutRecord, wave: number, agentIds: string[]): Promise<void> {
  const signedManifest = fromBinary(SignedReleaseManifestSchema, rollout.signedManifest);
  const body = rolloutDirectiveBody({ rolloutId: rollout.id, wave, signedManifest });
  await enqueueForAgents(trx, { tenantId: rollout.tenantId, agentIds, kind: "rollout", ref: rollout.id, body });
}

/** The ack reason of a directive a halt withdrew (AgentService.ListAgentCommands shows it). */
export const HALT_WITHDRAWAL_REASON = "withdrawn: rollout halted";

/**
 * A halt's effect on the current wave (operator's HaltRollout and the verifier's automatic halt
 * alike, in the transaction that halts): the directives not acknowledged yet of its members that
 * have reported nothing (DIRECTED) are withdrawn, and those members go back to PENDING, to be
 * directed again on resume. A member that reported (applying, failed, succeeded) has its
 * directive already, and keeps its own ack. Returns the withdrawal to announce after commit
 * (commands_withdrawn), if any.
 */
export async function withdrawWaveDirectives(trx: Executor, rollout: RolloutRecord): Promise<{ notice: CommandsWithdrawn | undefined; agents: number }> {
  const members = await waveMemberIds(trx, rollout.id, rollout.currentWave, "DIRECTED");
  const withdrawal = await withdrawUnacked(trx, { tenantId: rollout.tenantId, kind: "rollout", ref: rollout.id, reason: HALT_WITHDRAWAL_REASON, agentIds: members });
  await parkMembers(trx, { rolloutId: rollout.id, wave: rollout.currentWave, agentIds: withdrawal.agentIds, reason: "directive withdrawn by the halt: resume directs it again" });
  return { notice: withdrawal.notice, agents: withdrawal.agentIds.length };
}
