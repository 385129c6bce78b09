/**
 * `agwctl agents watch`: follows WatchAgents — the snapshot, then every change — one line per
 * agent (one JSON object per update with -o json) until interrupted, or until the snapshot is
 * complete with --once. A stream the gateway ends (restart, drain) is reopened; the new
 * snapshot replaces what was shown.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Command } from "commander";
import { AgentService, WatchAgentsResponseSchema } from "../../gen/agentgateway/admin/v1/agents_pb.js";
import { type AgentState, AgentStateSchema } from "../../gen/agentgateway/v1/common_pb.js";
import { examples, handle } from "../command-table.js";
import { CliError, EXIT } from "../errors.js";
import { labelsFlag } from "../flags.js";
import { type Io, parseEnum } from "../output.js";
import { renderTable } from "../table.js";
import { AGENT_HEADERS, agentRow } from "./agent-view.js";

const MAX_RECONNECTS = 8;

interface WatchOptions {
  state?: string[];
  label?: string[];
  name?: string;
  once?: boolean;
}

/** Registers `agents watch`. */
export function registerAgentsWatch(agents: Command, io: Io): void {
  const watch = agents
    .command("watch")
    .description("Follow agents live: the current ones, then each registration, approval, revocation, liveness or version change, as it happens.")
    .option("--state <state>", "only agents in this state (repeatable)", (v: string, p: string[] = []) => [...p, v])
    .option("--label <k=v>", "only agents with this operator label (repeatable)", (v: string, p: string[] = []) => [...p, v])
    .option("--name <prefix>", "only agents whose name starts with this")
    .option("--once", "print the current agents and exit");
  examples(watch, "agwctl agents watch --state pending", "agwctl agents watch -o json | jq -c '.agents[] | {name, state}'");
  handle<WatchOptions>(watch, io, {
    rpcs: [AgentService.method.watchAgents],
    async run(run, _args, o) {
      const states = (o.state ?? []).map((s) => parseEnum(AgentStateSchema, "--state", s.trim(), { pending: "PENDING_APPROVAL" }) as AgentState);
      const request = { states, labelSelector: labelsFlag("--label", o.label), namePrefix: o.name ?? "" };
      const client = run.client(AgentService);
      let failures = 0;
      for (;;) {
        try {
          for await (const res of client.watchAgents(request, { timeoutMs: 0 })) {
            failures = 0;
            run.out.item(WatchAgentsResponseSchema, res, {
              text: () =>
                [
                  ...(res.agents.length ? [renderTable(AGENT_HEADERS, res.agents.map(agentRow), { width: run.out.width, colour: run.out.colour })] : []),
                  ...res.removedIds.map((id) => `${id} no longer matches`),
                ].join("\n"),
              ids: () => res.agents.map((a) => a.id),
            });
            if (o.once && res.snapshotComplete) return;
          }
        } catch (err) {
          const code = ConnectError.from(err).code;
          if (code !== Code.Unavailable && code !== Code.DeadlineExceeded && code !== Code.Aborted) throw err;
        }
        if (++failures > MAX_RECONNECTS) throw new CliError(EXIT.UNAVAILABLE, `lost the agents watch ${MAX_RECONNECTS} times in a row: check the gateway, then watch again`);
        await new Promise((r) => setTimeout(r, Math.min(500 * 2 ** failures, 10_000)));
      }
    },
  });
}
