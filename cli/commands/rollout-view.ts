/** How rollouts, waves and their progress look for humans. */
import { type Rollout, RolloutState, RolloutStateSchema, type WaveStatus, WaveState, WaveStateSchema } from "../../gen/agentgateway/admin/v1/rollouts_pb.js";
import { enumName } from "../output.js";
import { type Cell, paint, relativeTime, renderFields, renderTable, type Style } from "../table.js";
import { dateOf, when } from "./agent-view.js";

const ROLLOUT_STYLE: Record<number, Style> = {
  [RolloutState.PLANNED]: "dim",
  [RolloutState.RUNNING]: "warn",
  [RolloutState.HALTED]: "bad",
  [RolloutState.COMPLETED]: "good",
  [RolloutState.CANCELLED]: "dim",
};

const WAVE_STYLE: Record<number, Style> = {
  [WaveState.PENDING]: "dim",
  [WaveState.IN_PROGRESS]: "warn",
  [WaveState.SUCCEEDED]: "good",
  [WaveState.FAILED]: "bad",
};

/** The rollout's state as a styled cell. */
export function rolloutStateCell(state: RolloutState): Cell {
  return { text: enumName(RolloutStateSchema, state), style: ROLLOUT_STYLE[state] ?? "dim" };
}

/** Columns of `rollouts list`. */
export const ROLLOUT_HEADERS = ["ID", "VERSION", "STATE", "WAVE", "SUCCEEDED", "FAILED", "CREATED", "UPDATED"];

const members = (r: Rollout) => r.waves.reduce((n, w) => n + w.memberIds.length, 0);
const sum = (r: Rollout, key: "succeeded" | "failed") => r.waves.reduce((n, w) => n + w[key], 0);

/** "2/3 early" or "-" before start. */
function currentWave(r: Rollout): string {
  const wave = r.waves[r.currentWave];
  return wave ? `${r.currentWave + 1}/${r.waves.length} ${wave.name}` : `-/${r.waves.length}`;
}

/** One row of `rollouts list`. */
export function rolloutRow(r: Rollout): Cell[] {
  return [
    r.id,
    r.targetVersion,
    rolloutStateCell(r.state),
    currentWave(r),
    `${sum(r, "succeeded")}/${members(r)}`,
    String(sum(r, "failed")),
    relativeTime(dateOf(r.createdAt)),
    relativeTime(dateOf(r.updatedAt)),
  ];
}

const WAVE_HEADERS = ["#", "WAVE", "STATE", "MEMBERS", "PENDING", "APPLYING", "SUCCEEDED", "FAILED", "STRAGGLERS", "DEADLINE"];

/** The waves of a rollout (or a plan) as a table. */
export function wavesTable(waves: WaveStatus[], width: number | undefined, colour: boolean): string {
  const rows: Cell[][] = waves.map((w) => [
    String(w.index + 1),
    w.name,
    w.state ? { text: enumName(WaveStateSchema, w.state), style: WAVE_STYLE[w.state] ?? "dim" } : "-",
    String(w.memberIds.length),
    String(w.pending),
    String(w.applying),
    String(w.succeeded),
    w.failed ? { text: String(w.failed), style: "bad" } : "0",
    String(w.stragglerIds.length),
    relativeTime(dateOf(w.verifyDeadline)),
  ]);
  return renderTable(WAVE_HEADERS, rows, { width, colour });
}

/** The key/value view of one rollout with its waves and failures. */
export function rolloutText(r: Rollout, width: number | undefined, colour: boolean): string {
  const fields: Array<[string, Cell]> = [
    ["id", r.id],
    ["version", r.targetVersion],
    ["state", rolloutStateCell(r.state)],
    ["current wave", currentWave(r)],
    ["auto advance", r.autoAdvanceAfter ? `after ${r.autoAdvanceAfter.seconds}s healthy` : "by hand (`agwctl rollouts advance`)"],
    ["created", when(r.createdAt)],
    ["updated", when(r.updatedAt)],
  ];
  if (r.haltReason) fields.push(["halt reason", { text: r.haltReason, style: "bad" }]);
  for (const note of r.resumeNotes) fields.push(["resume note", note]);
  const parts = [renderFields(fields, colour), "", wavesTable(r.waves, width, colour)];
  if (r.failures.length) {
    parts.push(
      "",
      renderTable(
        ["FAILED AGENT", "WAVE", "REASON"],
        r.failures.map((f) => [f.agentId, String(f.wave + 1), f.reason]),
        { width, colour, fixed: [0, 1] },
      ),
    );
  }
  return parts.join("\n");
}

/** A text progress bar: "[██████░░░░]". */
export function bar(done: number, total: number, width = 20): string {
  const filled = total > 0 ? Math.round((Math.min(done, total) / total) * width) : width;
  return `[${"█".repeat(filled)}${"░".repeat(width - filled)}]`;
}

/** One line of `rollouts watch` progress: the state, the current wave and its member counts. */
export function progressLine(r: Rollout, colour: boolean, withBar: boolean): string {
  const state = paint(enumName(RolloutStateSchema, r.state), ROLLOUT_STYLE[r.state], colour);
  const wave = r.waves[r.currentWave];
  if (!wave) return `${r.targetVersion} ${state}: not started (${members(r)} agents in ${r.waves.length} waves)`;
  const total = wave.memberIds.length;
  const counts = `${wave.succeeded}/${total} succeeded, ${wave.applying} applying, ${wave.pending} pending, ${wave.failed} failed`;
  const overall = `${sum(r, "succeeded")}/${members(r)} overall`;
  return `${r.targetVersion} ${state} wave ${r.currentWave + 1}/${r.waves.length} ${wave.name}${withBar ? ` ${bar(wave.succeeded + wave.failed, total)}` : ""} ${counts}; ${overall}`;
}
