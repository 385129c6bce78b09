/**
 * Runs the benchmarks one after another, each in its own process (so one's leftovers cannot
 * skew the next), and stops each after a time limit. Each benchmark prints its own Markdown
 * table and writes its own section of bench/RESULTS.md.
 *
 *   npm run bench                       # every benchmark below that exists
 *   npm run bench -- handshake          # only those whose name contains "handshake"
 *   npm run bench -- broadcast --profile   # extra flags are passed on to each benchmark
 *
 * To add a benchmark: add one entry to BENCHMARKS (script relative to bench/, and a time
 * limit). Scripts must bound their own loops, close what they open and exit on their own.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./lib/child.js";

interface Benchmark {
  name: string;
  script: string;
  /** Killed (SIGTERM, then SIGKILL 10 s later) after this long. */
  timeoutMinutes: number;
}

const BENCHMARKS: Benchmark[] = [
  { name: "handshake", script: "handshake.ts", timeoutMinutes: 15 },
  { name: "broadcast", script: "broadcast.ts", timeoutMinutes: 30 },
  { name: "upload-throughput", script: "upload-throughput.ts", timeoutMinutes: 20 },
  { name: "heartbeat", script: "heartbeat.ts", timeoutMinutes: 15 },
  { name: "telemetry-overhead", script: "telemetry-overhead.ts", timeoutMinutes: 10 },
  // The fleet simulator: N agents end to end (flags: bench/fleet-sim/main.ts).
  { name: "fleet-sim", script: "fleet-sim/main.ts", timeoutMinutes: 40 },
  // Reconnect benchmarks are picked up by name: bench/reconnect-*.ts.
  ...readdirSync(join(ROOT, "bench"))
    .filter((f) => /^reconnect-.+\.ts$/.test(f))
    .sort()
    .map((f) => ({ name: f.replace(/\.ts$/, ""), script: f, timeoutMinutes: 20 })),
];

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const filters = args.filter((a) => !a.startsWith("-"));
  const passOn = args.filter((a) => a.startsWith("-"));
  const selected = BENCHMARKS.filter((b) => existsSync(join(ROOT, "bench", b.script))).filter(
    (b) => filters.length === 0 || filters.some((f) => b.name.includes(f)),
  );
  if (selected.length === 0) {
    console.error(`no benchmark matches ${filters.join(", ")}; known: ${BENCHMARKS.map((b) => b.name).join(", ")}`);
    return 2;
  }
  const failed: string[] = [];
  for (const b of selected) {
    console.error(`\n=== ${b.name} (bench/${b.script}, limit ${b.timeoutMinutes} min) ===`);
    const t0 = Date.now();
    const code = await runOne(b, passOn);
    console.error(`=== ${b.name}: ${code === 0 ? "ok" : `FAILED (${code})`} in ${Math.round((Date.now() - t0) / 1000)} s ===`);
    if (code !== 0) failed.push(b.name);
  }
  if (failed.length > 0) console.error(`\nfailed: ${failed.join(", ")}`);
  return failed.length === 0 ? 0 : 1;
}

function runOne(b: Benchmark, args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", join("bench", b.script), ...args], { cwd: ROOT, stdio: "inherit" });
    let killTimer: NodeJS.Timeout | undefined;
    const limit = setTimeout(() => {
      console.error(`${b.name} exceeded ${b.timeoutMinutes} min: stopping it`);
      child.kill("SIGTERM");
      killTimer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    }, b.timeoutMinutes * 60_000);
    child.once("exit", (code, signal) => {
      clearTimeout(limit);
      if (killTimer) clearTimeout(killTimer);
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}

main().then((code) => process.exit(code));
