/** `agwctl agents …`: the fleet (AgentService). */
import { create } from "@bufbuild/protobuf";
import type { Command } from "commander";
import {
  type Agent,
  AgentService,
  ApproveAgentResponseSchema,
  GetAgentResponseSchema,
  ListAgentsResponseSchema,
  Liveness,
  LivenessSchema,
  RejectAgentResponseSchema,
  RetireAgentResponseSchema,
  RevokeAgentResponseSchema,
  UnrevokeAgentResponseSchema,
} from "../../gen/agentgateway/admin/v1/agents_pb.js";
import { type AgentState, AgentStateSchema } from "../../gen/agentgateway/v1/common_pb.js";
import { examples, handle } from "../command-table.js";
import { CliError, EXIT, usage } from "../errors.js";
import { collectPages, idArg, intFlag, labelsFlag } from "../flags.js";
import { enumChoices, type Io, parseEnum } from "../output.js";
import { confirm, interactive } from "../prompt.js";
import { renderFields, renderTable } from "../table.js";
import { AGENT_HEADERS, AGENT_NOT_FOUND, agentFields, agentRow } from "./agent-view.js";
import { registerAgentRecords } from "./agent-records.js";
import { registerAgentCommands } from "./agents-commands.js";
import { registerAgentsWatch } from "./agents-watch.js";

const STATE_ALIASES = { pending: "PENDING_APPROVAL" };
const collect = (v: string, p: string[] = []) => [...p, v];

/** A shell glob ("web-*", "db-?") as an anchored regular expression. */
export function globToRegExp(glob: string): RegExp {
  const body = [...glob].map((ch) => (ch === "*" ? ".*" : ch === "?" ? "." : ch.replace(/[.+^${}()|[\]\\]/g, "\\$&"))).join("");
  return new RegExp(`^${body}$`);
}

interface ListOptions {
  state?: string[];
  liveness?: string;
  label?: string[];
  hostLabel?: string[];
  name?: string;
  version?: string;
  limit: string;
}

/** Registers the agents group. */
export function registerAgents(program: Command, io: Io): void {
  const agents = program.command("agents").description("The fleet: list and inspect agents, approve, reject, revoke, un-revoke and retire them.");

  const list = agents
    .command("list")
    .alias("ls")
    .description("List agents (ordered by ID), with filters.")
    .option("--state <state>", `only agents in this state (${enumChoices(AgentStateSchema).join(", ")}, or pending); repeatable`, collect)
    .option("--liveness <liveness>", `only ${enumChoices(LivenessSchema).join(", ")} agents`)
    .option("--label <k=v>", "only agents with this operator label (the enrollment token's); repeatable", collect)
    .option("--host-label <k=v>", "only agents that claimed this host label themselves (their word: for looking, not deciding); repeatable", collect)
    .option("--name <glob>", "only agents whose name matches, e.g. 'web-*'")
    .option("--version <version>", "only agents reporting this version")
    .option("--limit <n>", "at most this many (0: all)", "500");
  examples(
    list,
    "agwctl agents list --state pending",
    "agwctl agents list --label site=ams --liveness offline",
    "agwctl agents list --name 'web-*' -o json | jq '.agents[].id'",
  );
  handle<ListOptions>(list, io, {
    rpcs: [AgentService.method.listAgents],
    async run(run, _args, o) {
      const states = (o.state ?? []).flatMap((s) => s.split(",")).map((s) => parseEnum(AgentStateSchema, "--state", s.trim(), STATE_ALIASES) as AgentState);
      const liveness = o.liveness ? (parseEnum(LivenessSchema, "--liveness", o.liveness) as Liveness) : Liveness.UNSPECIFIED;
      const namePrefix = o.name ? (/^[^*?]*/.exec(o.name)?.[0] ?? "") : "";
      const nameMatch = o.name ? globToRegExp(o.name) : undefined;
      const client = run.client(AgentService);
      const { items, next } = await collectPages<Agent>(
        async (pageToken, pageSize) => {
          const res = await client.listAgents({
            states,
            liveness,
            labelSelector: labelsFlag("--label", o.label),
            hostLabelSelector: labelsFlag("--host-label", o.hostLabel),
            namePrefix,
            pageSize,
            pageToken,
          });
          return { items: res.agents, next: res.nextPageToken };
        },
        intFlag("--limit", o.limit, 500, 1_000_000),
        1000,
        (a) => (!nameMatch || nameMatch.test(a.name)) && (o.version === undefined || a.agentVersion === o.version),
      );
      run.out.result(ListAgentsResponseSchema, create(ListAgentsResponseSchema, { agents: items, nextPageToken: next }), {
        text: () =>
          items.length
            ? renderTable(AGENT_HEADERS, items.map(agentRow), { width: run.out.width, colour: run.out.colour, fixed: [0, 2, 3, 6] })
            : "No agents match.",
        ids: () => items.map((a) => a.id),
      });
      if (next) run.out.note("More agents match: raise --limit.");
    },
  });

  const get = agents.command("get").argument("<id>", "agent ID").description("Show one agent: state, verification code, liveness, version, host and history.");
  examples(get, "agwctl agents get 6f1c2d3e-0a1b-4c2d-8e3f-445566778899", "agwctl agents get 6f1c… -o yaml");
  handle(get, io, {
    rpcs: [AgentService.method.getAgent],
    notFound: AGENT_NOT_FOUND,
    async run(run, [id]) {
      const res = await run.client(AgentService).getAgent({ id: idArg("agent ID", id) });
      run.out.result(GetAgentResponseSchema, res, {
        text: () => (res.agent ? renderFields(agentFields(res.agent), run.out.colour) : ""),
        ids: () => [res.agent?.id ?? ""],
      });
    },
  });

  const approve = agents
    .command("approve")
    .argument("<id>", "agent ID")
    .option("--code <code>", "the verification code the agent printed; approval fails if it differs")
    .description(
      "Approve an agent awaiting approval. Without --code it shows the gateway's code and asks you to confirm it matches the agent's (on a terminal only).",
    );
  examples(approve, "agwctl agents approve 6f1c… --code 7KQ2-M9XD", "agwctl agents approve 6f1c…        # shows the code and asks");
  handle<{ code?: string }>(approve, io, {
    rpcs: [AgentService.method.getAgent, AgentService.method.approveAgent],
    notFound: AGENT_NOT_FOUND,
    async run(run, [rawId], o) {
      const id = idArg("agent ID", rawId);
      const client = run.client(AgentService);
      let code = o.code;
      if (code === undefined) {
        if (!interactive(io)) {
          throw usage(
            `refusing to approve without --code when not on a terminal: compare the agent's code (\`agwctl agents get ${id}\`), then pass --code CODE`,
          );
        }
        const { agent } = await client.getAgent({ id });
        if (!agent) throw new CliError(EXIT.NOT_FOUND, `no agent ${id}`);
        io.stderr.write(
          `Agent ${agent.name} (${agent.id}) on ${agent.host?.hostname || "an unknown host"} registered with verification code\n\n    ${agent.verificationCode}\n\nIt must be the code the agent printed when it enrolled; if it differs, the key may have been substituted.\n`,
        );
        if (!(await confirm(io, "Do the codes match? Approve"))) throw new CliError(EXIT.FAILURE, "not approved");
        code = agent.verificationCode;
      }
      const res = await client.approveAgent({ id, expectedVerificationCode: code });
      run.out.result(ApproveAgentResponseSchema, res, { text: () => `Approved agent ${res.agent?.name ?? ""} (${id}).`, ids: () => [id] });
    },
  });

  const reject = agents
    .command("reject")
    .argument("<id>", "agent ID")
    .option("--reason <text>", "why (recorded in the audit log)")
    .description("Reject an agent awaiting approval; its key may enroll again with a new token.");
  examples(reject, "agwctl agents reject 6f1c… --reason 'unknown host'");
  handle<{ reason?: string }>(reject, io, {
    rpcs: [AgentService.method.rejectAgent],
    notFound: AGENT_NOT_FOUND,
    async run(run, [id], o) {
      const res = await run.client(AgentService).rejectAgent({ id: idArg("agent ID", id), reason: o.reason ?? "" });
      run.out.result(RejectAgentResponseSchema, res, { text: () => `Rejected agent ${res.agent?.name ?? ""} (${id}).`, ids: () => [res.agent?.id ?? ""] });
    },
  });

  const revoke = agents
    .command("revoke")
    .argument("<id>", "agent ID")
    .requiredOption("--reason <text>", "why (recorded in the audit log and sent to the agent)")
    .description("Deny the agent's identity everywhere at once: its sessions end, its stream is closed, its key is refused until un-revoked.");
  examples(revoke, "agwctl agents revoke 6f1c… --reason 'host compromised'");
  handle<{ reason: string }>(revoke, io, {
    rpcs: [AgentService.method.revokeAgent],
    notFound: AGENT_NOT_FOUND,
    async run(run, [id], o) {
      const res = await run.client(AgentService).revokeAgent({ id: idArg("agent ID", id), reason: o.reason });
      run.out.result(RevokeAgentResponseSchema, res, {
        text: () => `Revoked agent ${res.agent?.name ?? ""} (${id}): ${o.reason}`,
        ids: () => [res.agent?.id ?? ""],
      });
    },
  });

  const unrevoke = agents
    .command("unrevoke")
    .argument("<id>", "agent ID")
    .requiredOption("--note <text>", "why the key is trusted again (recorded in the audit log)")
    .description("Restore a revoked agent to ACTIVE. Explicit and audited; the agent must handshake again.");
  examples(unrevoke, "agwctl agents unrevoke 6f1c… --note 'false alarm, key verified on site'");
  handle<{ note: string }>(unrevoke, io, {
    rpcs: [AgentService.method.unrevokeAgent],
    notFound: AGENT_NOT_FOUND,
    async run(run, [id], o) {
      const res = await run.client(AgentService).unrevokeAgent({ id: idArg("agent ID", id), note: o.note });
      run.out.result(UnrevokeAgentResponseSchema, res, { text: () => `Un-revoked agent ${res.agent?.name ?? ""} (${id}).`, ids: () => [res.agent?.id ?? ""] });
    },
  });

  const retire = agents
    .command("retire")
    .argument("<id>", "agent ID")
    .option("--reason <text>", "why (recorded in the audit log)")
    .description("Decommission an agent; its key may later enroll again with a new token.");
  examples(retire, "agwctl agents retire 6f1c… --reason 'host replaced'");
  handle<{ reason?: string }>(retire, io, {
    rpcs: [AgentService.method.retireAgent],
    notFound: AGENT_NOT_FOUND,
    async run(run, [id], o) {
      const res = await run.client(AgentService).retireAgent({ id: idArg("agent ID", id), reason: o.reason ?? "" });
      run.out.result(RetireAgentResponseSchema, res, { text: () => `Retired agent ${res.agent?.name ?? ""} (${id}).`, ids: () => [res.agent?.id ?? ""] });
    },
  });

  registerAgentRecords(agents, io);
  registerAgentCommands(agents, io);
  registerAgentsWatch(agents, io);
}
