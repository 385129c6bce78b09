/**
 * Writing results into bench/RESULTS.md. Each benchmark owns one "## " section (other sections
 * are never touched: the file is read, modified and written back in one step right before the
 * write). Inside its section a benchmark keeps a short description and its last few runs as
 * "### " blocks, newest last, so repeated runs show their spread.
 */

import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { ROOT } from "./child.js";
import { loadAverages } from "./proc.js";

const RESULTS = join(ROOT, "bench", "RESULTS.md");

/** Facts about the machine and the run, for the header of each result block. */
export function machineFacts(extra: Record<string, string> = {}): string {
  const cpu = cpus();
  const lines = [
    `- date: ${new Date().toISOString()}`,
    `- machine: nproc ${cpu.length} (${cpu[0]?.model.trim() ?? "unknown CPU"}), Node ${process.version}, ${process.platform} ${process.arch}`,
    `- load averages at start (1/5/15 min): ${loadAverages()}`,
    ...Object.entries(extra).map(([k, v]) => `- ${k}: ${v}`),
  ];
  return lines.join("\n");
}

/** The command line that produced a result, as a reader would type it. */
export function commandLine(): string {
  const script = process.argv[1]?.replace(`${ROOT}`, "").replace(/^\/+/, "") ?? "";
  const env = Object.entries(process.env)
    .filter(([k]) => k.startsWith("BENCH_") || k.startsWith("AGW_"))
    .map(([k, v]) => `${k}=${v}`);
  return [...env, "npx tsx", script, ...process.argv.slice(2)].join(" ");
}

/**
 * Replaces the intro of section `heading` and appends `run` as its newest run block, keeping
 * at most `keepRuns` runs. Other sections of the file are kept byte for byte.
 */
export function writeSection(heading: string, intro: string, run: string, keepRuns = 4): void {
  const current = existsSync(RESULTS) ? readFileSync(RESULTS, "utf8") : "# Benchmark results\n";
  const start = current.indexOf(`\n${heading}\n`);
  let before = current;
  let after = "";
  let oldRuns: string[] = [];
  if (start !== -1) {
    const bodyStart = start + heading.length + 2;
    const next = current.indexOf("\n## ", bodyStart);
    const body = next === -1 ? current.slice(bodyStart) : current.slice(bodyStart, next);
    before = current.slice(0, start);
    after = next === -1 ? "" : current.slice(next + 1);
    oldRuns = body
      .split(/\n(?=### )/)
      .filter((block) => block.startsWith("### "))
      .map((block) => block.trim());
  }
  const runs = [...oldRuns, run.trim()].slice(-keepRuns);
  const section = `${heading}\n\n${intro.trim()}\n\n${runs.join("\n\n")}\n`;
  const next = `${before.trimEnd()}\n\n${section}${after ? `\n${after}` : ""}`;
  const tmp = `${RESULTS}.${process.pid}.tmp`;
  writeFileSync(tmp, next.endsWith("\n") ? next : `${next}\n`);
  renameSync(tmp, RESULTS);
}
