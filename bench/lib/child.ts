/**
 * Processes a benchmark measures: the real gateway (`server/main.ts serve`, like
 * test/support/gateway-process.ts, but with extra Node flags for GC control and CPU profiles)
 * and the bare baseline servers in bench/lib/. All bind to 127.0.0.1.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cpuSecondsOf, rssKiBOf } from "./proc.js";
import { sleep } from "./stats.js";

/** The repository root. */
export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

const MEMORY_HOOK = fileURLToPath(new URL("./memory-hook.ts", import.meta.url));

/** process.memoryUsage() of the child after two full GCs, plus its VmRSS. */
export interface MemorySnapshot {
  vmRssKiB: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  /** Path of the heap snapshot written after the GC (BENCH_HEAP_SNAPSHOT_DIR set), if any. */
  snapshot?: string;
}

/** A measured child process. */
export interface MeasuredProcess {
  url: string;
  pid: number;
  child: ChildProcess;
  output(): string;
  /** User + system CPU seconds used so far. */
  cpuSeconds(): number;
  /** Forces GC in the child (twice), waits for it to settle, and reads its memory. */
  memoryAfterGc(settleMs?: number): Promise<MemorySnapshot>;
  /** SIGTERM, then wait (SIGKILL after the timeout). Returns the CPU profile path if profiling. */
  stop(timeoutMs?: number): Promise<string | undefined>;
}

/** Options for spawnMeasured. */
export interface SpawnOptions {
  /** Script to run, relative to the repository root, and its arguments. */
  script: string[];
  env?: Record<string, string>;
  /** Write a V8 CPU profile (node --cpu-prof) to a temp dir; `stop()` returns its path. */
  cpuProfile?: boolean;
  /** Extra modules to preload (`--import`), absolute paths or relative to the repository root. */
  preload?: string[];
  /** Regex whose first group is the URL the process prints when it listens. */
  ready: RegExp;
  timeoutMs?: number;
}

/** Spawns `node --expose-gc --import tsx --import memory-hook … <script>` and waits for it to listen. */
export async function spawnMeasured(options: SpawnOptions): Promise<MeasuredProcess> {
  const profileDir = options.cpuProfile ? mkdtempSync(join(tmpdir(), "agw-bench-prof-")) : undefined;
  const nodeArgs = ["--expose-gc", "--import", "tsx", "--import", MEMORY_HOOK];
  for (const p of options.preload ?? []) nodeArgs.push("--import", p.startsWith("/") ? p : join(ROOT, p));
  if (profileDir) nodeArgs.push("--cpu-prof", "--cpu-prof-dir", profileDir);
  const child = spawn(process.execPath, [...nodeArgs, ...options.script], {
    cwd: ROOT,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const memoryWaiters: Array<(line: string) => void> = [];
  let partial = "";
  const onData = (d: Buffer) => {
    const text = d.toString();
    output += text;
    if (output.length > 1_000_000) output = output.slice(-500_000);
    partial += text;
    let nl = partial.indexOf("\n");
    while (nl !== -1) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      if (line.startsWith("BENCH_MEMORY ")) memoryWaiters.shift()?.(line.slice("BENCH_MEMORY ".length));
      nl = partial.indexOf("\n");
    }
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const timeoutMs = options.timeoutMs ?? 60_000;
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${options.script.join(" ")} did not start within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    const check = () => {
      const match = options.ready.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        child.stdout?.off("data", check);
        child.stderr?.off("data", check);
        resolve(match[1]);
      }
    };
    child.stdout?.on("data", check);
    child.stderr?.on("data", check);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${options.script.join(" ")} exited with ${code}:\n${output}`));
    });
  });
  const pid = child.pid ?? 0;
  return {
    url,
    pid,
    child,
    output: () => output,
    cpuSeconds: () => cpuSecondsOf(pid),
    async memoryAfterGc(settleMs = 1000) {
      await sleep(settleMs);
      const line = new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no BENCH_MEMORY line within 60 s")), 60_000);
        memoryWaiters.push((l) => {
          clearTimeout(timer);
          resolve(l);
        });
      });
      child.kill("SIGUSR2");
      const usage = JSON.parse(await line) as Omit<MemorySnapshot, "vmRssKiB">;
      // Let the allocator hand freed pages back before reading RSS from the kernel.
      await sleep(300);
      return { ...usage, vmRssKiB: rssKiBOf(pid) };
    },
    async stop(stopTimeoutMs = 15_000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), stopTimeoutMs);
        await exited;
        clearTimeout(timer);
      }
      if (!profileDir) return undefined;
      const file = readdirSync(profileDir).find((f) => f.endsWith(".cpuprofile"));
      return file ? join(profileDir, file) : undefined;
    },
  };
}

/** A gateway process and the admin key it was bootstrapped with. */
export interface BenchGateway extends MeasuredProcess {
  adminKey: string;
}

/**
 * Starts the real gateway on a random 127.0.0.1 port over the given database, with a known
 * bootstrap admin key. `env` adds or overrides AGW_* settings; `preload` adds bench-side
 * `--import` modules (experiments; the server code itself is never changed).
 */
export async function spawnGateway(databaseUrl: string, env: Record<string, string> = {}, cpuProfile = false, preload: string[] = []): Promise<BenchGateway> {
  const adminKey = `bench-admin-${randomBytes(24).toString("hex")}`;
  const proc = await spawnMeasured({
    script: ["server/main.ts", "serve"],
    env: {
      DATABASE_URL: databaseUrl,
      AGW_LISTEN: "127.0.0.1:0",
      AGW_BOOTSTRAP_ADMIN_KEY: adminKey,
      AGW_LOG_LEVEL: "warn",
      AGW_SHUTDOWN_GRACE: "2s",
      ...env,
    },
    cpuProfile,
    preload,
    ready: /listening on (http:\/\/[\d.]+:\d+)/,
  });
  return { ...proc, adminKey };
}
