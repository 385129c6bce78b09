/** `agwctl rollouts …`: staged rollouts of signed releases (RolloutService). */
import { readFileSync } from "node:fs";
import { create, type DescMessage, type DescMethod, fromJsonString, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { Command } from "commander";
import {
  AdvanceRolloutResponseSchema,
  CancelRolloutResponseSchema,
  CreateRolloutResponseSchema,
  GetRolloutResponseSchema,
  HaltRolloutResponseSchema,
  ListRolloutsResponseSchema,
  PlanRolloutResponseSchema,
  ResumeRolloutResponseSchema,
  RetryFailedMembersResponseSchema,
  type Rollout,
  RolloutService,
  type RolloutSpec,
  RolloutSpecSchema,
  StartRolloutResponseSchema,
  WaveSpecSchema,
} from "../../gen/agentgateway/admin/v1/rollouts_pb.js";
import { SignedReleaseManifestSchema } from "../../gen/agentgateway/v1/release_pb.js";
import { parseLabels } from "../../client/values.js";
import { examples, handle } from "../command-table.js";
import type { Run } from "../context.js";
import { usage } from "../errors.js";
import { collectPages, durationFlag, idArg, intFlag, labelsFlag } from "../flags.js";
import type { Io } from "../output.js";
import { renderTable } from "../table.js";
import { ROLLOUT_HEADERS, rolloutRow, rolloutText, wavesTable } from "./rollout-view.js";
import { registerWatch } from "./rollout-watch.js";

/** Appended to NOT_FOUND errors of the rollouts group. */
export const ROLLOUT_NOT_FOUND = "list rollouts with `agwctl rollouts list`";
const collect = (v: string, p: string[] = []) => [...p, v];

/** "canary=5" (cumulative percent) or "canary:ring=canary,zone=a" (label selector) as a wave. */
export function parseWave(value: string): MessageInitShape<typeof WaveSpecSchema> {
  const percent = /^([^=:]+)=(\d{1,3})$/.exec(value);
  if (percent?.[1] && percent[2] && Number(percent[2]) <= 100) return { name: percent[1], cumulativePercent: Number(percent[2]) };
  const labels = /^([^=:]+):(.+)$/.exec(value);
  if (labels?.[1] && labels[2]) {
    try {
      return { name: labels[1], labelSelector: parseLabels(labels[2]) };
    } catch (err) {
      throw usage(`--wave ${value}: ${(err as Error).message}`);
    }
  }
  throw usage(`--wave must be NAME=PERCENT (cumulative, 1-100) or NAME:k=v,…, got "${value}"`);
}

function readJson<T>(file: string, what: string, parse: (text: string) => T): T {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw usage(`cannot read ${what} ${file}: ${(err as Error).message}`);
  }
  try {
    return parse(text);
  } catch (err) {
    throw usage(`${file} is not a ${what} in protobuf JSON: ${(err as Error).message}`);
  }
}

interface SpecOptions {
  manifest?: string;
  spec?: string;
  target?: string[];
  targetHost?: string[];
  wave?: string[];
  failureBudget?: string;
  verifyWindow?: string;
  autoAdvanceAfter?: string;
}

/** Builds the RolloutSpec from --spec FILE and the flags (flags win). */
export function specFrom(o: SpecOptions): RolloutSpec {
  const spec = o.spec ? readJson(o.spec, "RolloutSpec", (t) => fromJsonString(RolloutSpecSchema, t)) : create(RolloutSpecSchema);
  if (o.manifest) spec.manifest = readJson(o.manifest, "SignedReleaseManifest", (t) => fromJsonString(SignedReleaseManifestSchema, t));
  if (!spec.manifest) throw usage("give the signed release with --manifest FILE (from `agwctl release sign --out FILE`)");
  if (o.target?.length) spec.targetSelector = labelsFlag("--target", o.target);
  if (o.targetHost?.length) spec.targetHostSelector = labelsFlag("--target-host", o.targetHost);
  const budget = o.failureBudget === undefined ? undefined : intFlag("--failure-budget", o.failureBudget, 0, 1_000_000);
  const verifyMs = durationFlag("--verify-window", o.verifyWindow);
  if (o.wave?.length) spec.waves = o.wave.map((w) => create(WaveSpecSchema, parseWave(w)));
  for (const wave of spec.waves) {
    if (budget !== undefined) wave.failureBudget = budget;
    if (verifyMs !== undefined) wave.verifyWindow = durationFromMs(verifyMs);
  }
  const autoMs = durationFlag("--auto-advance-after", o.autoAdvanceAfter);
  if (autoMs !== undefined) spec.autoAdvanceAfter = durationFromMs(autoMs);
  return spec;
}

function specOptions(cmd: Command): Command {
  return cmd
    .option("--manifest <file>", "the signed release manifest (`agwctl release sign --out FILE`)")
    .option("--spec <file>", "a whole RolloutSpec in protobuf JSON; the flags below override it")
    .option("--target <k=v,...>", "only agents with all these operator labels (default: every ACTIVE agent); repeatable", collect)
    .option("--target-host <k=v,...>", "also only agents that claimed all these host labels themselves (their own word); repeatable", collect)
    .option("--wave <wave>", "a wave, in order: NAME=PERCENT (cumulative) or NAME:k=v,… (labels); repeatable (default canary=5, early=25, rest=100)", collect)
    .option("--failure-budget <n>", "members of each wave that may fail before the rollout halts (default 0)")
    .option("--verify-window <duration>", "how long each wave's members have to report the new version (default 15m)")
    .option("--auto-advance-after <duration>", "release the next wave after a completed one was healthy this long (default: by hand)");
}

/** `rollouts ID` commands that take only the ID and print the rollout. */
function simple<D extends DescMessage>(
  group: Command,
  io: Io,
  spec: {
    name: string;
    description: string;
    method: DescMethod;
    schema: D;
    verb: string;
    call: (run: Run, id: string) => Promise<MessageShape<D> & { rollout?: Rollout }>;
  },
): void {
  const cmd = group.command(spec.name).argument("<id>", "rollout ID").description(spec.description);
  examples(cmd, `agwctl rollouts ${spec.name} 6f1c…`);
  handle(cmd, io, {
    rpcs: [spec.method],
    notFound: ROLLOUT_NOT_FOUND,
    async run(run, [id]) {
      const res = await spec.call(run, idArg("rollout ID", id));
      run.out.result(spec.schema, res, {
        text: () => [spec.verb, res.rollout ? rolloutText(res.rollout, run.out.width, run.out.colour) : ""].filter(Boolean).join("\n"),
        ids: () => [res.rollout?.id ?? ""],
      });
    },
  });
}

/** Registers the rollouts group. */
export function registerRollouts(program: Command, io: Io): void {
  const rollouts = program.command("rollouts").description("Staged rollouts of a signed release to the fleet, wave by wave, verified from heartbeats.");

  const plan = specOptions(rollouts.command("plan").description("Dry run: show who would be in each wave. Changes nothing."));
  examples(plan, "agwctl rollouts plan --manifest m.json --wave canary=10 --wave rest=100");
  handle<SpecOptions>(plan, io, {
    rpcs: [RolloutService.method.planRollout],
    async run(run, _args, o) {
      const res = await run.client(RolloutService).planRollout({ spec: specFrom(o) });
      run.out.result(PlanRolloutResponseSchema, res, {
        text: () => `${wavesTable(res.waves, run.out.width, run.out.colour)}\n${res.alreadyOnTarget.length} targeted agents already run the target version.`,
      });
    },
  });

  const createCmd = specOptions(
    rollouts.command("create").description("Create a rollout (state PLANNED) with its wave membership fixed. Start it with `agwctl rollouts start ID`."),
  );
  examples(createCmd, "agwctl rollouts create --manifest m.json --target site=ams --wave canary=5 --wave rest=100 --verify-window 10m");
  handle<SpecOptions>(createCmd, io, {
    rpcs: [RolloutService.method.createRollout],
    async run(run, _args, o) {
      const res = await run.client(RolloutService).createRollout({ spec: specFrom(o) });
      run.out.result(CreateRolloutResponseSchema, res, {
        text: () => `Created rollout ${res.rollout?.id ?? ""}.\n${res.rollout ? rolloutText(res.rollout, run.out.width, run.out.colour) : ""}`,
        ids: () => [res.rollout?.id ?? ""],
      });
    },
  });

  const rpc = RolloutService.method;
  const client = (run: Run) => run.client(RolloutService);
  simple(rollouts, io, {
    name: "start",
    description: "Release the first wave.",
    method: rpc.startRollout,
    schema: StartRolloutResponseSchema,
    verb: "Started.",
    call: (run, id) => client(run).startRollout({ id }),
  });
  simple(rollouts, io, {
    name: "advance",
    description: "Release the next wave once the current one has completed.",
    method: rpc.advanceRollout,
    schema: AdvanceRolloutResponseSchema,
    verb: "Advanced.",
    call: (run, id) => client(run).advanceRollout({ id }),
  });
  simple(rollouts, io, {
    name: "retry",
    description: "Send the directive again to the failed members of the current wave.",
    method: rpc.retryFailedMembers,
    schema: RetryFailedMembersResponseSchema,
    verb: "Retrying the failed members.",
    call: (run, id) => client(run).retryFailedMembers({ id }),
  });
  simple(rollouts, io, {
    name: "get",
    description: "Show a rollout: state, waves and member counts, failures.",
    method: rpc.getRollout,
    schema: GetRolloutResponseSchema,
    verb: "",
    call: (run, id) => client(run).getRollout({ id }),
  });

  const halt = rollouts
    .command("halt")
    .argument("<id>", "rollout ID")
    .requiredOption("--reason <text>", "why (recorded; shown by `rollouts get`)")
    .description("Stop releasing waves (agents already told keep going).");
  examples(halt, "agwctl rollouts halt 6f1c… --reason 'error rate up in ams'");
  handle<{ reason: string }>(halt, io, {
    rpcs: [rpc.haltRollout],
    notFound: ROLLOUT_NOT_FOUND,
    async run(run, [rawId], o) {
      const id = idArg("rollout ID", rawId);
      const res = await run.client(RolloutService).haltRollout({ id, reason: o.reason });
      run.out.result(HaltRolloutResponseSchema, res, { text: () => `Halted rollout ${id}: ${res.rollout?.haltReason ?? o.reason}`, ids: () => [id] });
    },
  });

  const resume = rollouts
    .command("resume")
    .argument("<id>", "rollout ID")
    .requiredOption("--note <text>", "why it is safe to go on (recorded)")
    .description("Move past a halt.");
  examples(resume, "agwctl rollouts resume 6f1c… --note 'canary failures were a known hook bug'");
  handle<{ note: string }>(resume, io, {
    rpcs: [rpc.resumeRollout],
    notFound: ROLLOUT_NOT_FOUND,
    async run(run, [rawId], o) {
      const id = idArg("rollout ID", rawId);
      const res = await run.client(RolloutService).resumeRollout({ id, note: o.note });
      run.out.result(ResumeRolloutResponseSchema, res, { text: () => `Resumed rollout ${id}.`, ids: () => [id] });
    },
  });

  const cancel = rollouts
    .command("cancel")
    .argument("<id>", "rollout ID")
    .option("--reason <text>", "why (recorded)")
    .description("Stop the rollout for good.");
  examples(cancel, "agwctl rollouts cancel 6f1c… --reason 'superseded by 2.0.1'");
  handle<{ reason?: string }>(cancel, io, {
    rpcs: [rpc.cancelRollout],
    notFound: ROLLOUT_NOT_FOUND,
    async run(run, [rawId], o) {
      const id = idArg("rollout ID", rawId);
      const res = await run.client(RolloutService).cancelRollout({ id, reason: o.reason ?? "" });
      run.out.result(CancelRolloutResponseSchema, res, { text: () => `Cancelled rollout ${id}.`, ids: () => [id] });
    },
  });

  const list = rollouts
    .command("list")
    .alias("ls")
    .option("--limit <n>", "at most this many, newest first (0: all)", "20")
    .description("List rollouts, newest first.");
  examples(list, "agwctl rollouts list", "agwctl rollouts list -o json | jq -r '.rollouts[] | select(.state == \"ROLLOUT_STATE_RUNNING\") | .id'");
  handle<{ limit: string }>(list, io, {
    rpcs: [rpc.listRollouts],
    async run(run, _args, o) {
      const client = run.client(RolloutService);
      const { items, next } = await collectPages(
        async (pageToken, pageSize) => {
          const res = await client.listRollouts({ pageToken, pageSize });
          return { items: res.rollouts, next: res.nextPageToken };
        },
        intFlag("--limit", o.limit, 20, 100_000),
        100,
      );
      run.out.result(ListRolloutsResponseSchema, create(ListRolloutsResponseSchema, { rollouts: items, nextPageToken: next }), {
        text: () =>
          items.length ? renderTable(ROLLOUT_HEADERS, items.map(rolloutRow), { width: run.out.width, colour: run.out.colour, fixed: [0, 2] }) : "No rollouts.",
        ids: () => items.map((r) => r.id),
      });
    },
  });

  registerWatch(rollouts, io);
}
