import type { RolloutStage } from "../../gen/agentgateway/v1/control_pb.js";

/** An agent's report on a rollout directive, as it arrived on its ControlStream. */
export interface RolloutProgressReport {
  tenantId: string;
  agentId: string;
  rolloutId: string;
  stage: RolloutStage;
  message: string;
}

/**
 * What agents report on their streams that other capabilities act on. The composition root
 * injects the implementation (server/app/context.ts), so control/ does not depend on the
 * capabilities that listen. Calls must return at once and never throw: the stream's reader must
 * not wait for, or fail with, a listener; listeners log their own failures.
 */
export interface AgentEvents {
  rolloutProgress(report: RolloutProgressReport): void;
}
