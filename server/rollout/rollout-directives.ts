import { fromBinary } from "@bufbuild/protobuf";
import { SignedReleaseManifestSchema } from "../../gen/agentgateway/v1/release_pb.js";
import { enqueueForAgents } from "../control/command-store.js";
import { rolloutDirectiveBody } from "../control/commands.js";
import type { Executor } from "../db/database.js";
import { directWaveMembers, getWave, type RolloutRecord, updateRollout, updateWave, waveMemberIds } from "./rollout-store.js";

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
