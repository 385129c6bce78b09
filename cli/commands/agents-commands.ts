/** `agwctl agents commands`: what the gateway queued for an agent on its ControlStream (AgentService.ListAgentCommands). */
import { create } from "@bufbuild/protobuf";
import type { Command } from "commander";
import {
  type AgentCommand,
  AgentCommandState,
  AgentCommandStateSchema,
  AgentService,
  ListAgentCommandsResponseSchema,
} from "../../gen/agentgateway/admin/v1/agents_pb.js";
import { examples, handle } from "../command-table.js";
import { collectPages, idArg, intFlag } from "../flags.js";
import { enumName, type Io } from "../output.js";
import { type Cell, relativeTime, renderTable, type Style } from "../table.js";
import { AGENT_NOT_FOUND, dateOf } from "./agent-view.js";

const STATE_STYLE: Record<number, Style> = {
  [AgentCommandState.PENDING]: "warn",
  [AgentCommandState.APPLIED]: "good",
  [AgentCommandState.FAILED]: "bad",
  [AgentCommandState.UNSUPPORTED]: "bad",
  [AgentCommandState.WITHDRAWN]: "dim",
};

export const COMMAND_HEADERS = ["SEQ", "KIND", "STATE", "QUEUED", "ACKED", "WHAT", "REASON"];

/** What a command asks, in a few words. */
export function commandSummary(c: AgentCommand): string {
  const payload = c.command?.payload;
  if (payload?.case === "peerRevoked") return `stop trusting agent ${payload.value.agentId}`;
  if (payload?.case === "rollout") return `install (rollout ${payload.value.rolloutId}, wave ${payload.value.wave})`;
  return c.ref ? `${c.kind} ${c.ref}` : c.kind;
}

export function commandRow(c: AgentCommand): Cell[] {
  return [
    String(c.sequence),
    c.kind,
    { text: enumName(AgentCommandStateSchema, c.state), style: STATE_STYLE[c.state] ?? "dim" },
    relativeTime(dateOf(c.createdAt)),
    c.ackedAt ? relativeTime(dateOf(c.ackedAt)) : "-",
    commandSummary(c),
    c.ackReason || "-",
  ];
}

/** Registers `agents commands` under the agents group. */
export function registerAgentCommands(agents: Command, io: Io): void {
  const commands = agents
    .command("commands")
    .argument("<id>", "agent ID")
    .option("--pending", "only commands the agent has not acknowledged yet")
    .option("--limit <n>", "at most this many, newest (0: all)", "50")
    .description("Show the commands queued for an agent (peer revocations, rollout directives), newest first, with their acknowledgements.");
  examples(commands, "agwctl agents commands 6f1c… --pending", "agwctl agents commands 6f1c… -o json | jq '.commands[] | {kind, state}'");
  handle<{ pending?: boolean; limit: string }>(commands, io, {
    rpcs: [AgentService.method.listAgentCommands],
    notFound: AGENT_NOT_FOUND,
    async run(run, [rawId], o) {
      const agentId = idArg("agent ID", rawId);
      const client = run.client(AgentService);
      const { items, next } = await collectPages(
        async (pageToken, pageSize) => {
          const res = await client.listAgentCommands({ agentId, pendingOnly: o.pending === true, pageSize, pageToken });
          return { items: res.commands, next: res.nextPageToken };
        },
        intFlag("--limit", o.limit, 50, 1_000_000),
        500,
      );
      run.out.result(ListAgentCommandsResponseSchema, create(ListAgentCommandsResponseSchema, { commands: items, nextPageToken: next }), {
        text: () =>
          items.length
            ? renderTable(COMMAND_HEADERS, items.map(commandRow), { width: run.out.width, colour: run.out.colour, fixed: [0, 1, 2] })
            : o.pending
              ? "No pending commands."
              : "No commands.",
      });
    },
  });
}
