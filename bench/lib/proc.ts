/**
 * Readings of other processes from /proc (Linux only): CPU time, resident memory, and the CPU
 * time of a whole PostgreSQL cluster (postmaster plus its backends).
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";

let ticksPerSecond: number | undefined;

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on every common kernel). */
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** Fields of /proc/<pid>/stat after the command name: [0] state, [1] ppid, [11] utime, [12] stime, [13] cutime, [14] cstime. */
function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** User + system CPU seconds the process has used so far (its own threads, not its children). */
export function cpuSecondsOf(pid: number): number {
  const f = statFields(pid);
  if (!f) return Number.NaN;
  return (Number(f[11]) + Number(f[12])) / clockTicks();
}

/** VmRSS of the process in KiB, from /proc/<pid>/status. */
export function rssKiBOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return match?.[1] ? Number(match[1]) : Number.NaN;
}

/**
 * CPU seconds used by a PostgreSQL cluster: the postmaster, every live child (backends, WAL
 * writer, …) and the children that already exited (reaped, so counted in cutime/cstime).
 */
export function clusterCpuSeconds(postmasterPid: number): number {
  const root = statFields(postmasterPid);
  if (!root) return Number.NaN;
  let ticks = Number(root[11]) + Number(root[12]) + Number(root[13]) + Number(root[14]);
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const f = statFields(Number(entry));
    if (f && Number(f[1]) === postmasterPid) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / clockTicks();
}

/** CPU seconds all processes of the machine have used (all cores: /proc/stat minus idle and iowait). */
export function machineBusySeconds(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - (f[3] ?? 0) - (f[4] ?? 0)) / clockTicks();
}

/** Share (0..1) of the machine's CPU that was busy over `ms`. */
async function busyShare(ms: number): Promise<number> {
  const b0 = machineBusySeconds();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  return (machineBusySeconds() - b0) / (((performance.now() - t0) / 1000) * cpus().length);
}

/** The 1/5/15-minute load averages, formatted "1.23 / 0.98 / 0.70". */
export function loadAverages(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(" / ");
}

/** The 1-minute load average. */
export function load1(): number {
  return loadavg()[0] ?? 0;
}

/**
 * Waits (bounded) until the machine is quiet: the 1-minute load average below `maxLoad` and,
 * over the last 2 s, at most `maxBusy` of all CPU busy (the load average lags by a minute).
 * Call it while the benchmark's own processes are idle. Resolves with the busy share seen last.
 */
export async function waitForQuietMachine(maxLoad: number, timeoutMs: number, log: (line: string) => void, maxBusy = 0.15): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let warned = false;
  for (;;) {
    const busy = await busyShare(2000);
    if ((load1() < maxLoad && busy <= maxBusy) || Date.now() > deadline) {
      if (warned) log(`machine ${busy <= maxBusy ? "quiet" : "still busy, going ahead"}: load ${loadAverages()}, ${Math.round(busy * 100)} % CPU busy`);
      return busy;
    }
    if (!warned) {
      log(`machine busy (load ${loadAverages()}, ${Math.round(busy * 100)} % CPU busy): waiting up to ${Math.round(timeoutMs / 1000)} s`);
      warned = true;
    }
  }
}
