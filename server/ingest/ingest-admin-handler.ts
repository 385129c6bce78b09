import type { ServiceImpl } from "@connectrpc/connect";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { AgentService } from "../../gen/agentgateway/admin/v1/agents_pb.js";
import { decodePageToken, encodePageToken, pageSize } from "../admin/pagination.js";
import { getAgent } from "../agents/agent-store.js";
import type { AppContext } from "../app/context.js";
import { InvalidInputError, NotFoundError } from "../errors/errors.js";
import { operatorOf } from "../identity/principal.js";
import { listEvents, listPoints, type RangeQuery } from "./ingest-store.js";
import { isValidMicros, timestampFromMicros, timestampMicros } from "./timestamps.js";

/**
 * Approximate size limit of one page. gRPC clients refuse messages over 4 MiB by default
 * (grpc-go, grpcurl, grpcio), and an event may carry 1 MiB, so a page stops early — with a
 * next_page_token — rather than grow past that. The slack covers the estimate's error.
 */
const PAGE_BYTES = 3.5 * 1024 * 1024;

/** AgentService.ListAgentEvents and ListAgentTelemetry: newest first, keyset-paginated, tenant-scoped. */
export function ingestAdminHandlers(app: AppContext): Pick<ServiceImpl<typeof AgentService>, "listAgentEvents" | "listAgentTelemetry"> {
  const db = app.database.db;
  /** The common part of both reads; another tenant's agent is NOT_FOUND, like a missing one. */
  async function rangeQuery(
    tenantId: string,
    req: { agentId: string; since?: Timestamp | undefined; until?: Timestamp | undefined; pageToken: string },
    limit: number,
  ): Promise<RangeQuery> {
    const agent = await getAgent(db, tenantId, req.agentId);
    if (!agent) throw new NotFoundError(`no agent ${req.agentId}`);
    const since = req.since ? instant("since", req.since) : undefined;
    const until = req.until ? instant("until", req.until) : undefined;
    const after = cursorOf(req.pageToken);
    return {
      tenantId,
      agentId: agent.id,
      limit,
      maxBytes: PAGE_BYTES,
      ...(since !== undefined ? { sinceMicros: since } : {}),
      ...(until !== undefined ? { untilMicros: until } : {}),
      ...(after ? { after } : {}),
    };
  }
  return {
    async listAgentEvents(req, ctx) {
      const query = await rangeQuery(operatorOf(ctx).tenantId, req, pageSize(req.pageSize, 100, 1000));
      const page = await listEvents(db, query);
      const last = page.rows.at(-1);
      return {
        events: page.rows.map((e) => ({
          event: {
            id: e.id,
            type: e.type,
            severity: e.severity,
            message: e.message,
            attributes: e.attributes,
            payload: e.payload,
            occurredAt: timestampFromMicros(e.occurredAtMicros),
          },
          receivedAt: timestampFromMicros(e.receivedAtMicros),
        })),
        nextPageToken: page.more && last ? encodePageToken({ t: last.occurredAtMicros.toString(), id: last.id }) : "",
      };
    },
    async listAgentTelemetry(req, ctx) {
      const query = await rangeQuery(operatorOf(ctx).tenantId, req, pageSize(req.pageSize, 500, 5000));
      const page = await listPoints(db, { ...query, ...(req.name ? { name: req.name } : {}) });
      const last = page.rows.at(-1);
      return {
        points: page.rows.map((p) => ({
          id: p.id,
          name: p.name,
          labels: p.labels,
          value: p.value,
          observedAt: timestampFromMicros(p.observedAtMicros),
        })),
        nextPageToken: page.more && last ? encodePageToken({ t: last.observedAtMicros.toString(), id: last.id }) : "",
      };
    },
  };
}

function instant(field: string, ts: Timestamp): bigint {
  const micros = timestampMicros(ts);
  if (micros === undefined) throw new InvalidInputError(`${field}: must be a valid timestamp between 0001-01-01 and 9999-12-31`);
  return micros;
}

/** The keyset cursor inside a page token: the last row's time (microseconds) and id. */
function cursorOf(token: string): { micros: bigint; id: string } | undefined {
  const key = decodePageToken<{ t: string; id: string }>(token, ["t", "id"]);
  if (!key) return undefined;
  if (typeof key.t !== "string" || !/^-?\d{1,20}$/.test(key.t) || !isValidMicros(BigInt(key.t)) || typeof key.id !== "string") {
    throw new InvalidInputError("page_token is not valid: pass next_page_token from a previous response unchanged");
  }
  return { micros: BigInt(key.t), id: key.id };
}
