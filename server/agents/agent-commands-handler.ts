import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type AgentCommandSchema, AgentCommandState, type AgentService } from "../../gen/agentgateway/admin/v1/agents_pb.js";
import { decodePageToken, encodePageToken, pageSize } from "../admin/pagination.js";
import type { AppContext } from "../app/context.js";
import { type CommandRecord, listAgentCommands } from "../control/command-store.js";
import { toWireCommand } from "../control/commands.js";
import type { AckStatusName } from "../db/schema.js";
import { InvalidInputError, NotFoundError } from "../errors/errors.js";
import { operatorOf } from "../identity/principal.js";
import { getAgent } from "./agent-store.js";

const STATE: Record<AckStatusName, AgentCommandState> = {
  OK: AgentCommandState.APPLIED,
  FAILED: AgentCommandState.FAILED,
  UNSUPPORTED: AgentCommandState.UNSUPPORTED,
  WITHDRAWN: AgentCommandState.WITHDRAWN,
};

const INVALID = "page_token is not valid: pass next_page_token from a previous response unchanged";

/** AgentService.ListAgentCommands: one agent's queued commands and their acks, newest first, tenant-scoped. */
export function agentCommandsHandler(app: AppContext): Pick<ServiceImpl<typeof AgentService>, "listAgentCommands"> {
  const db = app.database.db;
  return {
    async listAgentCommands(req, ctx) {
      const tenantId = operatorOf(ctx).tenantId;
      const limit = pageSize(req.pageSize, 50, 500);
      const before = beforeSequence(req.pageToken, req.pendingOnly);
      // Another tenant's agent is NOT_FOUND, like a missing one.
      const agent = await getAgent(db, tenantId, req.agentId);
      if (!agent) throw new NotFoundError(`no agent ${req.agentId}`);
      const rows = await listAgentCommands(db, {
        tenantId,
        agentId: agent.id,
        pendingOnly: req.pendingOnly,
        limit,
        ...(before !== undefined ? { beforeSequence: before } : {}),
      });
      const last = rows.at(-1);
      return {
        commands: rows.map(toProtoCommand),
        nextPageToken: rows.length === limit && last ? encodePageToken({ s: last.sequence, p: req.pendingOnly ? 1 : 0 }) : "",
      };
    },
  };
}

/**
 * The sequence a page token continues below. A token of the other listing (pending only or
 * all) is refused: it would silently skip or repeat commands.
 */
function beforeSequence(token: string, pendingOnly: boolean): number | undefined {
  const key = decodePageToken<{ s: number; p: number }>(token, ["s", "p"]);
  if (key === undefined) return undefined;
  if (typeof key.s !== "number" || !Number.isSafeInteger(key.s) || key.s < 1 || key.p !== (pendingOnly ? 1 : 0)) throw new InvalidInputError(INVALID);
  return key.s;
}

function toProtoCommand(r: CommandRecord): MessageInitShape<typeof AgentCommandSchema> {
  return {
    commandId: r.commandId,
    sequence: BigInt(r.sequence),
    kind: r.kind,
    ref: r.ref ?? "",
    state: r.ackStatus ? STATE[r.ackStatus] : AgentCommandState.PENDING,
    createdAt: timestampFromDate(r.createdAt),
    ...(r.ackedAt ? { ackedAt: timestampFromDate(r.ackedAt) } : {}),
    ackReason: r.ackReason ?? "",
    command: toWireCommand(r),
  };
}
