/**
 * deploy/Containerfile without a container engine (none runs on these machines): its final
 * stage is read the way an engine reads it, and its ENTRYPOINT + CMD run with its ENV, WORKDIR
 * and USER under a read-only root with tmpfs on /tmp and the VOLUMEs (test/support/
 * container-sandbox.sh, needs root for the mount namespace). The HEALTHCHECK command probes it,
 * STOPSIGNAL stops it, and it must exit 0. What this cannot check (the image build itself, the
 * base image's contents) is listed in docs/operations.md.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runtimeStage, stagesOf, parseContainerfile } from "./support/containerfile.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const CONTAINERFILE = join(REPO, "deploy", "Containerfile");
const SANDBOX = join(REPO, "test", "support", "container-sandbox.sh");
const stage = runtimeStage(CONTAINERFILE);

/** Whether this machine can run the sandbox; in CI it must (CI runs as root with tini installed). */
function sandboxMissing(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (mount namespace)";
  for (const bin of ["/usr/bin/unshare", "/usr/bin/nsenter", "/usr/bin/setpriv", stage.entrypoint[0] ?? ""]) {
    if (!existsSync(bin)) return `${bin} is missing (apt-get install tini util-linux)`;
  }
  try {
    execFileSync("unshare", ["-m", "true"], { stdio: "ignore" });
  } catch {
    return "unshare -m is not permitted here";
  }
  return undefined;
}
const missing = sandboxMissing();
if (missing && process.env.CI) throw new Error(`CI must run the container check: ${missing}`);

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database?.drop();
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

interface Running {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

function start(command: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Running {
  const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/** Runs the HEALTHCHECK until it passes (exit 0) or the start period is over. */
async function healthyWithin(probe: () => { status: number; stdout: string }, running: Running, ms: number): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (running.child.exitCode !== null) throw new Error(`exited with ${running.child.exitCode}:\n${running.output()}`);
    const { status, stdout } = probe();
    if (status === 0) return stdout;
    if (Date.now() > deadline) throw new Error(`HEALTHCHECK never passed: ${stdout}\n${running.output()}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): { status: number; stdout: string } {
  try {
    return { status: 0, stdout: execFileSync(command, args, { cwd, env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 10_000 }) };
  } catch (err) {
    const e = err as { status?: number; stdout?: string; stderr?: string };
    return { status: e.status ?? 1, stdout: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

/** The image's environment with the listen address moved to loopback (tests bind 127.0.0.1 only). */
function imageEnv(port: number, extra: Record<string, string>): Record<string, string> {
  return { ...stage.env, AGW_LISTEN: `127.0.0.1:${port}`, AGW_SHUTDOWN_GRACE: "2s", ...extra };
}

describe("deploy/Containerfile, read as an engine reads it", () => {
  it("builds with npm ci and runs as a fixed non-root user, exec-form, with a health check and SIGTERM", () => {
    const stages = stagesOf(parseContainerfile(CONTAINERFILE));
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const build = stages.find((s) => s.name === "build");
    expect(build?.body.some((i) => i.keyword === "RUN" && /\bnpm ci\b/.test(i.args))).toBe(true);
    expect(build?.body.some((i) => i.keyword === "RUN" && /npm prune --omit=dev/.test(i.args))).toBe(true);
    // A numeric non-zero uid: runAsNonRoot can only verify numbers.
    expect(stage.user).toMatch(/^[1-9]\d*:[1-9]\d*$/);
    expect(stage.entrypoint[0]).toBe("/usr/bin/tini");
    expect(stage.cmd).toEqual(["node", "bin/agentgateway.js", "serve"]);
    expect(stage.stopSignal).toBe("SIGTERM");
    expect(stage.healthcheck?.cmd[0]).toBe("node");
    expect(stage.env.AGW_LISTEN).toBe("0.0.0.0:7070");
    expect(stage.expose).toEqual(["7070"]);
    expect(stage.volumes).toContain(stage.env.AGW_DATA_DIR);
    expect(stage.volumes).toContain(stage.env.AGW_AGENT_STATE_DIR);
  });

  it("copies into the runtime stage only paths that exist, from the build stage", () => {
    for (const copy of stage.copiesFrom) {
      expect(copy.stage).toBe("build");
      for (const source of copy.sources) {
        const inRepo = relative("/src", source);
        if (inRepo === "node_modules") continue; // made by npm ci in the build stage
        expect(existsSync(join(REPO, inRepo)), `${source} (COPY --from=build)`).toBe(true);
      }
    }
    // Whatever the gateway and agent import at run time must be in the image: the sources it copies.
    const copied = new Set(stage.copiesFrom.flatMap((c) => c.sources.map((s) => relative("/src", s).split("/")[0])));
    for (const dir of ["bin", "gen", "migrations", "client", "server", "agent", "cli"]) expect(copied.has(dir), dir).toBe(true);
  });

  it("needs no devDependency at run time: every package the shipped sources import is a dependency", () => {
    const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    const shipped = ["bin", "gen", "migrations", "client", "server", "agent", "cli"];
    const imported = new Map<string, string>();
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (/\.(ts|js|mjs)$/.test(name) && !/\.test\.ts$/.test(name)) {
          const text = readFileSync(path, "utf8");
          const specs = [
            ...text.matchAll(/^\s*(?:import|export)\b[^;]*?\sfrom\s+"([^"]+)"/gm),
            ...text.matchAll(/^\s*import\s+"([^"]+)"/gm),
            ...text.matchAll(/\bimport\(\s*"([^"]+)"\s*\)/g),
          ].map((m) => m[1] ?? "");
          for (const spec of specs) {
            if (spec.startsWith(".") || spec.startsWith("node:")) continue;
            const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : (spec.split("/")[0] ?? spec);
            imported.set(name, relative(REPO, path));
          }
        }
      }
    };
    for (const dir of shipped) walk(join(REPO, dir));
    expect(imported.size).toBeGreaterThan(5);
    for (const [name, where] of imported) expect(pkg.dependencies[name], `${name} (imported by ${where})`).toBeDefined();
  });
});

describe("the image's command, run outside a container", () => {
  it("serves with the image's CMD and ENV, passes its HEALTHCHECK, and exits 0 on STOPSIGNAL", async () => {
    const port = await freePort();
    const tmp = mkdtempSync(join(tmpdir(), "agw-img-tmp-"));
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", ...imageEnv(port, { DATABASE_URL: database.url, TMPDIR: tmp }) };
    // WORKDIR /app is the repository here; the entrypoint (tini) is exercised by the sandboxed test.
    const [command = "", ...args] = stage.cmd;
    const gw = start(command, args, env, REPO);
    const health = stage.healthcheck?.cmd ?? [];
    const probe = () => run(health[0] ?? "", health.slice(1).map((a) => a.replace(/^\/app\//, `${REPO}/`)), env, REPO);
    try {
      expect(await healthyWithin(probe, gw, 60_000)).toContain('"ready":true');
      gw.child.kill(stage.stopSignal as NodeJS.Signals);
      expect(await gw.exited).toBe(0);
      expect(gw.output()).toContain("gateway stopped");
      // Once it is gone the probe must fail, or it could never report anything.
      expect(probe().status).not.toBe(0);
    } finally {
      gw.child.kill("SIGKILL");
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 120_000);
});

describe.skipIf(missing !== undefined)(`the image's ENTRYPOINT + CMD under a read-only root as USER ${stage.user}${missing ? ` (skipped: ${missing})` : ""}`, () => {
  const roots: string[] = [];
  afterAll(() => {
    for (const root of roots) rmSync(root, { recursive: true, force: true });
  });

  function sandboxed(extraEnv: Record<string, string>, port: number): Running {
    const root = mkdtempSync(join(tmpdir(), "agw-sandbox-"));
    roots.push(root);
    // In a container tini is PID 1 and reaps orphans as such; here it is not, and registering
    // as a child subreaper gives it the same role (and silences its warning).
    const env = { ...imageEnv(port, extraEnv), TINI_SUBREAPER: "1" };
    const words = [...Object.entries({ PATH: "/usr/local/bin:/usr/bin:/bin", ...env }).map(([k, v]) => `${k}=${v}`), ...stage.entrypoint, ...stage.cmd];
    return start("unshare", ["-m", "sh", SANDBOX, ...words], {
      PATH: process.env.PATH,
      SANDBOX_ROOT: root,
      SANDBOX_APP: REPO,
      SANDBOX_APP_PATH: stage.workdir,
      SANDBOX_WORKDIR: stage.workdir,
      SANDBOX_USER: stage.user,
      // Only what the image copies, so a path the Containerfile forgets fails here too.
      SANDBOX_COPY: stage.copiesFrom.flatMap((c) => c.sources.map((s) => relative("/src", s))).join(" "),
      SANDBOX_VOLUMES: stage.volumes.join(" "),
    }, REPO);
  }

  /** The HEALTHCHECK runs inside the container: same root, same user, same environment. */
  function probeInside(gw: Running, port: number, extraEnv: Record<string, string>) {
    const env = Object.entries({ PATH: "/usr/local/bin:/usr/bin:/bin", ...imageEnv(port, extraEnv) }).map(([k, v]) => `${k}=${v}`);
    const [uid, gid] = (stage.user ?? "").split(":");
    return () => run("nsenter", [`--target=${gw.child.pid}`, "--mount", "--root", "--wd", "--", "/usr/bin/setpriv", `--reuid=${uid}`, `--regid=${gid}`, "--clear-groups", "--", "/usr/bin/env", "-i", ...env, ...(stage.healthcheck?.cmd ?? [])], {}, REPO);
  }

  it("starts, is healthy, writes nothing outside tmpfs, and drains to exit 0 on SIGTERM through tini", async () => {
    const port = await freePort();
    const adminKey = `img-${randomBytes(20).toString("hex")}`;
    const extra = { DATABASE_URL: database.url, AGW_BOOTSTRAP_ADMIN_KEY: adminKey };
    const gw = sandboxed(extra, port);
    try {
      expect(await healthyWithin(probeInside(gw, port, extra), gw, 60_000)).toContain('"ready":true');
      // It really runs as the image's user, and really cannot write its root or its code.
      const status = readFileSync(`/proc/${gw.child.pid}/status`, "utf8");
      const uid = (stage.user ?? "").split(":")[0];
      expect(status).toMatch(new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s`, "m"));
      expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
      expect(status).toMatch(/^CapEff:\s+0+$/m);
      gw.child.kill(stage.stopSignal as NodeJS.Signals);
      expect(await gw.exited).toBe(0);
      expect(gw.output()).toContain("gateway stopped");
      expect(gw.output()).not.toContain(adminKey);
    } finally {
      gw.child.kill("SIGKILL");
    }
  }, 120_000);

  it("keeps the embedded database in its VOLUME, and cannot write anywhere else", async () => {
    // The image's defaults without DATABASE_URL: PGlite in AGW_DATA_DIR, which is a volume.
    const port = await freePort();
    const gw = sandboxed({}, port);
    try {
      expect(await healthyWithin(probeInside(gw, port, {}), gw, 90_000)).toContain('"ready":true');
      gw.child.kill(stage.stopSignal as NodeJS.Signals);
      expect(await gw.exited).toBe(0);
    } finally {
      gw.child.kill("SIGKILL");
    }
    // The same pointed outside the volumes must fail (Node reports the refused recursive mkdir as ENOENT).
    const outside = sandboxed({ AGW_DATA_DIR: "/agw-data" }, await freePort());
    try {
      expect(await outside.exited).not.toBe(0);
      expect(outside.output()).toMatch(/(EROFS|ENOENT|EACCES)[^\n]*mkdir '\/agw-data'/);
    } finally {
      outside.child.kill("SIGKILL");
    }
  }, 180_000);
});
