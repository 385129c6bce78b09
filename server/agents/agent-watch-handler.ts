import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { AgentService, WatchAgentsResponseSchema } from "../../gen/agentgateway/admin/v1/agents_pb.js";
import type { AppContext } from "../app/context.js";
import type { AgentStateName } from "../db/schema.js";
import { operatorOf } from "../identity/principal.js";
import { fromProtoAgentState, toProtoAgent } from "./agent-mapping.js";
import { listAgents } from "./agent-store.js";
import type { AgentWatcher, WatchFilter } from "./agent-watch.js";

type WatchMessage = MessageInitShape<typeof WatchAgentsResponseSchema>;

/**
 * AgentService.WatchAgents: a snapshot read page by page (the server holds one page at a time;
 * the client's reading paces it), then the changes the hub (app.agentWatch) hands out. The
 * watcher is registered before the snapshot is read, so a change made meanwhile is sent after
 * it rather than lost.
 */
export function agentWatchHandler(app: AppContext): Pick<ServiceImpl<typeof AgentService>, "watchAgents"> {
  const thresholds = { staleAfterMs: app.config.staleAfterMs, offlineAfterMs: app.config.offlineAfterMs };
  const hub = app.agentWatch;
  return {
    async *watchAgents(req, ctx) {
      const operator = operatorOf(ctx);
      const filter: WatchFilter = {
        states: req.states.map(fromProtoAgentState).filter((s): s is AgentStateName => s !== undefined),
        labels: req.labelSelector,
        namePrefix: req.namePrefix,
      };
      const watcher = hub.open(operator.tenantId, filter);
      try {
        yield* snapshot(watcher);
        for (;;) {
          const batch = await watcher.next(ctx.signal, hub.options.keepaliveMs);
          if (batch.kind === "closed") return;
          watcher.lastSentAt = Date.now();
          if (batch.kind === "resync") yield* snapshot(watcher);
          else if (batch.kind === "keepalive") yield {};
          else yield { agents: batch.upserts.map((a) => toProtoAgent(a, thresholds)), removedIds: batch.removedIds };
        }
      } finally {
        hub.release(watcher);
      }
    },
  };

  async function* snapshot(watcher: AgentWatcher): AsyncGenerator<WatchMessage> {
    let afterId: string | undefined;
    let first = true;
    for (;;) {
      const page = await listAgents(app.database.db, {
        tenantId: watcher.tenantId,
        states: [...watcher.filter.states],
        labels: { ...watcher.filter.labels },
        namePrefix: watcher.filter.namePrefix,
        limit: hub.options.batchSize,
        ...(afterId ? { afterId } : {}),
      });
      const done = page.length < hub.options.batchSize;
      watcher.lastSentAt = Date.now();
      yield { reset: first, agents: page.map((a) => toProtoAgent(a, thresholds)), snapshotComplete: done };
      if (done) return;
      first = false;
      afterId = page.at(-1)?.id;
    }
  }
}
