/**
 * deploy/compose.yaml's commands, run as processes without a container engine: the migrate
 * job, two gateway replicas with the file's environment, the enrollment-token job (the real
 * mint script) and both agents' command lines, against real PostgreSQL. The engine's part
 * (networking, volumes, Envoy) is replaced by loopback addresses and temporary directories;
 * test/deploy-compose.test.ts checks that part of the file.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService, Liveness } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { AgentState } from "../gen/agentgateway/v1/common_pb.js";
import { adminClient } from "./support/admin.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { readYaml, REPO } from "./support/deploy-files.js";
import { type GatewayProcess, spawnGateway } from "./support/gateway-process.js";

type Service = { command: string[]; entrypoint?: string[]; environment: Record<string, string>; volumes?: string[] };
const compose = readYaml("deploy/compose.yaml") as { services: Record<string, Service> };
const LB = "http://lb:8080";

let database: TestDatabase;
let dir: string;
const adminKey = `agwk_${randomBytes(24).toString("hex")}`;
const gateways: GatewayProcess[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  dir = mkdtempSync(join(tmpdir(), "agw-compose-run-"));
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  await Promise.all(gateways.map((g) => g.stop()));
  await database?.drop();
  rmSync(dir, { recursive: true, force: true });
});

/** Compose's interpolation for the variables the file requires, with this run's values. */
function interpolate(value: string): string {
  return value
    .replace(/\$\{AGW_DB_PASSWORD:\?[^}]*\}/g, "unused")
    .replace(/\$\{AGW_ADMIN_KEY:\?[^}]*\}/g, adminKey)
    .replace(/\$\$/g, "$");
}

function environment(service: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(compose.services[service]?.environment ?? {})) env[k] = interpolate(String(v));
  // The file's DATABASE_URL names the compose network's host; here it is the test server.
  if (env.DATABASE_URL) env.DATABASE_URL = database.url;
  return env;
}

function run(argv: string[], env: Record<string, string>): { child: ChildProcess; done: Promise<{ code: number | null; output: string }> } {
  const [command = "", ...args] = argv;
  const child = spawn(command, args, { cwd: REPO, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let output = "";
  child.stdout?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  return { child, done: new Promise((resolve) => child.once("exit", (code) => resolve({ code, output }))) };
}

/** A service's command with the compose network's names and volumes mapped onto this machine. */
function commandOf(service: string, mounts: Record<string, string>, lb: string): string[] {
  const s = compose.services[service] as Service;
  // The image's tini is exercised by test/deploy-container.test.ts; here its command runs directly.
  const entry = (s.entrypoint ?? []).filter((w, i, all) => !(w === "/usr/bin/tini" || (w === "--" && all[i - 1] === "/usr/bin/tini")));
  const map = (w: string) => {
    let out = interpolate(w).replaceAll(LB, lb);
    for (const [from, to] of Object.entries(mounts)) out = out.replaceAll(from, to);
    return out;
  };
  return [...entry, ...s.command].map(map);
}

function volumeMount(service: string, volume: string): string {
  const mount = compose.services[service]?.volumes?.find((v) => v.startsWith(`${volume}:`));
  if (!mount) throw new Error(`${service} does not mount ${volume}`);
  return mount.split(":")[1] ?? "";
}

describe("deploy/compose.yaml's commands, without an engine", () => {
  it("migrate, two replicas, the token job and two agents come up, and the agents are ACTIVE and ONLINE", async () => {
    const migrate = run(commandOf("migrate", {}, ""), environment("migrate"));
    const migrated = await migrate.done;
    expect(migrated.code, migrated.output).toBe(0);
    expect(migrated.output).toMatch(/applied: 0001-initial/);

    // Two replicas with the file's environment (on loopback ports instead of the project network).
    for (let i = 0; i < 2; i++) gateways.push(await spawnGateway({ ...environment("gateway"), AGW_LISTEN: "127.0.0.1:0", AGW_LOG_LEVEL: "warn" }));
    const [first, second] = gateways as [GatewayProcess, GatewayProcess];

    const tokenVolume = join(dir, "enrollment-token");
    mkdirSync(tokenVolume, { mode: 0o700 });
    const mintMounts = { [volumeMount("enrollment-token", "enrollment-token")]: tokenVolume, "/opt/agw/mint-enrollment-token.mjs": join(REPO, "deploy/compose/mint-enrollment-token.mjs") };
    const mint = await run(commandOf("enrollment-token", mintMounts, first.url), environment("enrollment-token")).done;
    expect(mint.code, mint.output).toBe(0);
    const tokenFile = join(tokenVolume, "enrollment-token");
    const token = readFileSync(tokenFile, "utf8").trim();
    expect(token).toMatch(/^agwe_/);
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(mint.output).not.toContain(token);
    // A restarted stack must not mint again.
    const again = await run(commandOf("enrollment-token", mintMounts, first.url), environment("enrollment-token")).done;
    expect(again.code).toBe(0);
    expect(again.output).toContain("not minting another token");
    expect(readFileSync(tokenFile, "utf8").trim()).toBe(token);

    // The agents go through the other replica: enrollment and streams work across replicas.
    const agents = ["agent-1", "agent-2"].map((name) => {
      const state = join(dir, name);
      const mounts = { [volumeMount(name, "enrollment-token")]: tokenVolume, "/var/lib/agw-agent": state };
      const env = Object.fromEntries(Object.entries(environment(name)).map(([k, v]) => [k, v === "/var/lib/agw-agent" ? state : v]));
      return { name, argv: commandOf(name, mounts, second.url), env };
    });
    const running = agents.map((a) => ({ ...a, proc: run(a.argv, a.env) }));

    const client = adminClient(AgentService, first.url, adminKey);
    const deadline = Date.now() + 60_000;
    let listed: { name: string; state: AgentState; liveness: Liveness; labels: Record<string, string>; host?: { labels: Record<string, string> } }[] = [];
    while (Date.now() < deadline) {
      listed = (await client.listAgents({})).agents;
      if (listed.length === 2 && listed.every((a) => a.state === AgentState.ACTIVE && a.liveness === Liveness.ONLINE)) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(listed.map((a) => a.name).sort(), running.map((r) => r.proc.child.exitCode).join(",")).toEqual(["agent-1", "agent-2"]);
    for (const a of listed) {
      expect(a.state).toBe(AgentState.ACTIVE);
      expect(a.liveness).toBe(Liveness.ONLINE);
      // The operator's labels come from the token the mint job made; what the agent claims is a host label.
      expect(a.labels.deployment).toBe("compose-demo");
      expect(a.host?.labels.site).toBe("compose");
    }

    // docker stop: SIGTERM to the process (sh exec'd into the agent), which exits 0.
    for (const r of running) r.proc.child.kill("SIGTERM");
    for (const r of running) {
      const { code, output } = await r.proc.done;
      expect(code, `${r.name}: ${r.proc.child.signalCode}\n${output}`).toBe(0);
    }

    // docker restart: the same command finds its identity and does not enroll again.
    const restarted = run(agents[0]?.argv ?? [], agents[0]?.env ?? {});
    const waitFor = Date.now() + 30_000;
    let out = "";
    const collect = (d: Buffer) => {
      out += d.toString();
    };
    restarted.child.stdout?.on("data", collect);
    restarted.child.stderr?.on("data", collect);
    // Until `run` has its signal handlers a SIGTERM simply ends the process (nothing is lost
    // then either); wait for it to start so the clean stop is what is tested.
    while (!out.includes("agent starting") && Date.now() < waitFor && restarted.child.exitCode === null) await new Promise((r) => setTimeout(r, 200));
    expect(out).toContain("Already enrolled and approved");
    expect(out).toContain("agent starting");
    restarted.child.kill("SIGTERM");
    expect((await restarted.done).code).toBe(0);
    expect((await client.listAgents({})).agents).toHaveLength(2);
  }, 180_000);
});
