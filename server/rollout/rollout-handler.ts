import type { ServiceImpl } from "@connectrpc/connect";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { type RolloutService, type RolloutSpec, RolloutState } from "../../gen/agentgateway/admin/v1/rollouts_pb.js";
import type { AppContext } from "../app/context.js";
import { createdPageToken, decodeCreatedPageToken, pageSize } from "../admin/pagination.js";
import type { Actor } from "../audit/audit-log.js";
import { InvalidInputError } from "../errors/errors.js";
import { operatorOf } from "../identity/principal.js";
import type { RolloutSpecInput } from "./rollout-service.js";
import { listRolloutIds } from "./rollout-store.js";
import { isTerminal, loadRolloutView } from "./rollout-view.js";

const DEFAULT_VERIFY_WINDOW_MS = 15 * 60_000;

function specFrom(spec: RolloutSpec | undefined): RolloutSpecInput {
  if (!spec?.manifest) throw new InvalidInputError("spec.manifest is required");
  return {
    signedManifest: spec.manifest,
    targetSelector: spec.targetSelector,
    targetHostSelector: spec.targetHostSelector,
    autoAdvanceAfterMs: spec.autoAdvanceAfter ? durationMs(spec.autoAdvanceAfter) : 0,
    waves: spec.waves.map((w) => ({
      name: w.name,
      cumulativePercent: w.cumulativePercent,
      labelSelector: w.labelSelector,
      failureBudget: w.failureBudget,
      verifyWindowMs: w.verifyWindow ? durationMs(w.verifyWindow) : DEFAULT_VERIFY_WINDOW_MS,
    })),
  };
}

/** agentgateway.admin.v1.RolloutService. */
export function rolloutService(app: AppContext): ServiceImpl<typeof RolloutService> {
  const db = app.database.db;
  const engine = app.rollouts;
  const who = (ctx: Parameters<typeof operatorOf>[0]): { tenantId: string; actor: Actor } => {
    const operator = operatorOf(ctx);
    return { tenantId: operator.tenantId, actor: { kind: "operator", keyId: operator.keyId } };
  };
  const view = async (tenantId: string, id: string) => ({ rollout: await loadRolloutView(db, tenantId, id) });
  return {
    async planRollout(req, ctx) {
      const plan = await engine.plan(operatorOf(ctx).tenantId, specFrom(req.spec));
      return {
        waves: plan.waves.map((w, index) => ({ index, name: w.name, memberIds: w.members, pending: w.members.length })),
        alreadyOnTarget: plan.alreadyOnTarget,
      };
    },
    async createRollout(req, ctx) {
      const { tenantId, actor } = who(ctx);
      return view(tenantId, await engine.create(tenantId, actor, specFrom(req.spec)));
    },
    async startRollout(req, ctx) {
      const { tenantId, actor } = who(ctx);
      await engine.start(tenantId, actor, req.id);
      return view(tenantId, req.id);
    },
    async advanceRollout(req, ctx) {
      const { tenantId, actor } = who(ctx);
      await engine.advance(tenantId, actor, req.id);
      return view(tenantId, req.id);
    },
    async haltRollout(req, ctx) {
      const { tenantId, actor } = who(ctx);
      await engine.halt(tenantId, actor, req.id, req.reason);
      return view(tenantId, req.id);
    },
    async resumeRollout(req, ctx) {
      const { tenantId, actor } = who(ctx);
      await engine.resume(tenantId, actor, req.id, req.note);
      return view(tenantId, req.id);
    },
    async cancelRollout(req, ctx) {
      const { tenantId, actor } = who(ctx);
      await engine.cancel(tenantId, actor, req.id, req.reason);
      return view(tenantId, req.id);
    },
    async retryFailedMembers(req, ctx) {
      const { tenantId, actor } = who(ctx);
      await engine.retryFailed(tenantId, actor, req.id);
      return view(tenantId, req.id);
    },
    async getRollout(req, ctx) {
      return view(operatorOf(ctx).tenantId, req.id);
    },
    async listRollouts(req, ctx) {
      const tenantId = operatorOf(ctx).tenantId;
      const limit = pageSize(req.pageSize, 20, 100);
      const after = decodeCreatedPageToken(req.pageToken);
      const page = await listRolloutIds(db, tenantId, { limit, ...(after ? { after } : {}) });
      const rollouts = await Promise.all(page.map((r) => loadRolloutView(db, tenantId, r.id)));
      const last = page.at(-1);
      return { rollouts, nextPageToken: page.length === limit && last ? createdPageToken(last) : "" };
    },
    async *watchRollout(req, ctx) {
      const tenantId = operatorOf(ctx).tenantId;
      let changed = true;
      let wake: (() => void) | undefined;
      const poke = () => {
        changed = true;
        wake?.();
      };
      const off = app.bus.subscribe("rollout_changed", (id) => id === req.id && poke());
      // A slow fallback in case a notification was missed (bus reconnect).
      const fallback = setInterval(poke, 5000);
      ctx.signal.addEventListener("abort", poke, { once: true });
      try {
        while (!ctx.signal.aborted) {
          if (changed) {
            changed = false;
            const { rollout } = await view(tenantId, req.id);
            yield { rollout };
            if (isTerminal(rollout.state ?? RolloutState.UNSPECIFIED)) return;
          }
          await new Promise<void>((resolve) => {
            wake = resolve;
            if (changed || ctx.signal.aborted) resolve();
          });
          wake = undefined;
        }
      } finally {
        off();
        clearInterval(fallback);
        ctx.signal.removeEventListener("abort", poke);
      }
    },
  };
}
