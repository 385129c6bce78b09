import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BIN = fileURLToPath(new URL("../../bin/agwctl.js", import.meta.url));

/** The outcome of one agwctl process. */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A long-running agwctl (watch, --follow) or a process behind a pseudo-terminal. */
export interface CliProcess {
  child: ChildProcess;
  output(): string;
  stdout(): string;
  exited: Promise<number | null>;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
}

/**
 * The environment agwctl runs with in tests: its own config directory, and none of the
 * developer's AGW_* settings leaking in.
 */
export function cliEnv(configHome: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_CONFIG_HOME: configHome, HOME: configHome, NO_COLOR: "1", ...extra };
  for (const key of ["AGW_SERVER", "AGW_API_KEY", "AGW_SYSTEM_KEY", "AGW_CA_FILE", "AGW_CA_PIN"]) if (!(key in extra)) delete env[key];
  return env;
}

/** Starts `bin/agwctl.js` as `npx agwctl` would, with `args`. */
export function startCli(args: string[], env: NodeJS.ProcessEnv, input?: string): CliProcess {
  return track(spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env, stdio: ["pipe", "pipe", "pipe"] }), input);
}

/**
 * Starts agwctl behind a pseudo-terminal (util-linux `script`), so it sees a TTY on stdin,
 * stdout and stderr: prompts, colour and progress bars. Write answers to `child.stdin`.
 */
export function startCliOnTty(args: string[], env: NodeJS.ProcessEnv): CliProcess {
  const command = [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  return track(
    spawn("script", ["-qefc", command, "/dev/null"], { cwd: ROOT, env: { ...env, TERM: "xterm", COLUMNS: "100" }, stdio: ["pipe", "pipe", "pipe"] }),
  );
}

function track(child: ChildProcess, input?: string): CliProcess {
  let out = "";
  let all = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
    all += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    all += d.toString();
  });
  if (input !== undefined) child.stdin?.end(input);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    output: () => all,
    stdout: () => out,
    exited,
    async waitFor(pattern, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = pattern.exec(all);
        if (match) return match;
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`no ${pattern} in the output:\n${all}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}

/** Runs agwctl to completion. */
export async function runCliProcess(args: string[], env: NodeJS.ProcessEnv, input = ""): Promise<CliResult> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  child.stdin.end(input);
  const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
  return { code, stdout, stderr };
}
