import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { EnrollmentTokenService } from "../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { sendLocalEvents } from "../agent/lib/event-source.js";
import { EXIT } from "../agent/lib/errors.js";
import { AGENT_VERSION } from "../agent/lib/version.js";
import { adminClient } from "./support/admin.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";
import { freePort } from "./support/free-port.js";
import { type GatewayProcess, spawnGateway } from "./support/gateway-process.js";

/**
 * End to end with real processes: a gateway child process on a fixed loopback port (so it can
 * be killed and started again on the same address) over real PostgreSQL, and the agent as the
 * operator runs it: `npx tsx agent/main.ts enroll`, then `bin/agw-agent.js run`.
 */

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const adminKey = `agent-e2e-${randomBytes(20).toString("hex")}`;

let database: TestDatabase;
let port: number;
let gateway: GatewayProcess | undefined;
let stateDir: string;
const children: ChildProcess[] = [];

const gatewayEnv = () => ({
  DATABASE_URL: database.url,
  AGW_LISTEN: `127.0.0.1:${port}`,
  AGW_BOOTSTRAP_ADMIN_KEY: adminKey,
  AGW_LOG_LEVEL: "warn",
  AGW_HEARTBEAT_FLUSH_INTERVAL: "200ms",
});

function admin<S extends DescService>(service: S) {
  return adminClient(service, `http://127.0.0.1:${port}`, adminKey);
}

/** A child process with its output collected and its exit awaitable. */
interface Proc {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
}

function start(command: string, args: string[]): Proc {
  const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, AGW_ENROLLMENT_TOKEN: "" }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let output = "";
  child.stdout?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    output: () => output,
    exited,
    async waitFor(pattern, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = pattern.exec(output);
        if (match) return match;
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`no ${pattern} in the output of ${args.join(" ")}:\n${output}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}

const agentCli = (args: string[]) => start("npx", ["tsx", "agent/main.ts", ...args]);
const agentBin = (args: string[]) => start(process.execPath, [join(ROOT, "bin", "agw-agent.js"), ...args]);

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Telemetry point count for the agent: the admin API, or the table if that RPC has not landed. */
async function telemetryCount(agentId: string): Promise<number> {
  try {
    const res = await admin(AgentService).listAgentTelemetry({ agentId, pageSize: 100 });
    return res.points.length;
  } catch (err) {
    if (ConnectError.from(err).code !== Code.Unimplemented) throw err;
    return Number(await sql("select count(*) as n from telemetry_points where agent_id = $1", [agentId]));
  }
}

/** Every stored event message of the agent (all pages). */
async function eventMessages(agentId: string): Promise<string[]> {
  const messages: string[] = [];
  try {
    let pageToken = "";
    do {
      const res = await admin(AgentService).listAgentEvents({ agentId, pageSize: 1000, pageToken });
      for (const e of res.events) if (e.event) messages.push(e.event.message);
      pageToken = res.nextPageToken;
    } while (pageToken);
  } catch (err) {
    if (ConnectError.from(err).code !== Code.Unimplemented) throw err;
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const res = await client.query<{ message: string }>("select message from events where agent_id = $1", [agentId]);
      messages.push(...res.rows.map((r) => r.message));
    } finally {
      await client.end();
    }
  }
  return messages;
}

async function sql(statement: string, params: unknown[]): Promise<unknown> {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    const res = await client.query(statement, params);
    return Object.values((res.rows[0] as Record<string, unknown>) ?? {})[0];
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  database = await createTestDatabase();
  port = await freePort();
  stateDir = await mkdtemp(join(tmpdir(), "agw-agent-e2e-"));
  gateway = await spawnGateway(gatewayEnv());
}, 90_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await gateway?.stop();
  await database?.drop();
  await rm(stateDir, { recursive: true, force: true });
});

describe("agw-agent end to end", () => {
  it("enrolls, is approved, uploads, survives a gateway crash without losing or duplicating events, and stops for good when revoked", async () => {
    const dir = join(stateDir, "agent");
    const { secret: token } = await admin(EnrollmentTokenService).createEnrollmentToken({ maxUses: 1, requiresApproval: true });

    // 1. Enroll: the key is made here, the code printed, and --wait polls until approval.
    const enroll = agentCli([
      "enroll",
      "--server",
      `http://127.0.0.1:${port}`,
      "--token",
      token,
      "--name",
      "e2e-agent",
      "--labels",
      "suite=e2e",
      "--state-dir",
      dir,
      "--wait",
    ]);
    const registered = await enroll.waitFor(/as agent ([0-9a-f-]{36})/);
    const agentId = registered[1] ?? "";
    const code = (await enroll.waitFor(/Verification code: ([0-9A-Z]{4}-[0-9A-Z]{4})/))[1] ?? "";
    await enroll.waitFor(/awaiting approval/);
    const { agent } = await admin(AgentService).approveAgent({ id: agentId, expectedVerificationCode: code });
    expect(agent?.verificationCode).toBe(code);
    expect(await enroll.exited, enroll.output()).toBe(0);
    expect(enroll.output()).toMatch(/Approved\. Session valid until/);
    expect(enroll.output()).not.toMatch(/agw[esk]_[A-Za-z0-9_-]{43}/);
    expect((await fs.stat(dir)).mode & 0o777).toBe(0o700);
    for (const f of ["identity.key", "state.json", "session.json"]) expect((await fs.stat(join(dir, f))).mode & 0o777).toBe(0o600);

    // 2. Run: telemetry from the host collector arrives.
    const run = agentBin(["run", "--state-dir", dir, "--telemetry-interval", "1s", "--backoff-initial", "300ms", "--backoff-max", "2s", "--log-level", "info"]);
    await run.waitFor(/connected: control stream open/);
    await until("telemetry", async () => ((await telemetryCount(agentId)) > 0 ? true : undefined));

    // 3. The gateway crashes. Events produced meanwhile are taken in (answered once on disk)…
    await gateway?.kill();
    const offline = Array.from({ length: 60 }, (_, i) => ({
      type: "e2e.offline",
      severity: i % 2 ? "warning" : "info",
      message: `offline-${i}`,
      attributes: { i: String(i) },
    }));
    const answers = [
      ...(await sendLocalEvents(join(dir, "events.sock"), offline.slice(0, 30))),
      ...(await sendLocalEvents(join(dir, "events.sock"), offline.slice(30, 50))),
    ];
    expect(
      answers.every((a) => a.ok),
      JSON.stringify(answers),
    ).toBe(true);
    // …from the spool directory too.
    await fs.writeFile(
      join(dir, "spool", ".batch.tmp"),
      offline
        .slice(50)
        .map((e) => JSON.stringify(e))
        .join("\n"),
    );
    await fs.rename(join(dir, "spool", ".batch.tmp"), join(dir, "spool", "batch-1.jsonl"));
    await until("spool ingested", async () => ((await fs.readdir(join(dir, "spool"))).length === 0 ? true : undefined), 20_000);
    await run.waitFor(/disconnected; reconnecting/);
    await new Promise((r) => setTimeout(r, 3000));

    // 4. …and all arrive, exactly once, when it is back on the same address.
    gateway = await spawnGateway(gatewayEnv());
    const messages = await until("every offline event", async () => {
      const all = (await eventMessages(agentId)).filter((m) => m.startsWith("offline-"));
      return all.length >= offline.length ? all : undefined;
    });
    expect(messages.sort()).toEqual(offline.map((e) => e.message).sort());
    expect(new Set(messages).size).toBe(messages.length);

    // `status` shows the state without secrets.
    const status = agentCli(["status", "--state-dir", dir]);
    expect(await status.exited).toBe(0);
    expect(status.output()).toMatch(new RegExp(`agent: +${agentId}`));
    expect(status.output()).not.toMatch(/agws_|privateKey/);

    // Heartbeats carried the host facts.
    const seen = await until("host facts from heartbeats", async () => {
      const a = (await admin(AgentService).getAgent({ id: agentId })).agent;
      return a?.host?.hostname === hostname() && a.agentVersion ? a : undefined;
    });
    expect(seen.agentVersion).toBe(AGENT_VERSION);

    // A graceful stop exits 0; a restart reuses the stored session (no handshake).
    run.child.kill("SIGTERM");
    expect(await run.exited, run.output()).toBe(0);
    expect(run.output()).toMatch(/"msg":"agent stopped"/);
    const rerun = agentBin(["run", "--state-dir", dir, "--telemetry-interval", "0", "--log-level", "info"]);
    await rerun.waitFor(/connected: control stream open/);
    expect(rerun.output()).not.toMatch(/handshake complete/);

    // `refresh` handshakes in another process; the running agent is fenced and adopts it.
    const refresh = agentCli(["refresh", "--state-dir", dir]);
    expect(await refresh.exited, refresh.output()).toBe(0);
    expect(refresh.output()).toMatch(/New session for agent .* valid until/);
    expect(refresh.output()).not.toMatch(/agws_/);
    await until("the running agent back on the new session", async () =>
      (rerun.output().match(/connected: control stream open/g) ?? []).length >= 2 ? true : undefined,
    );
    expect(rerun.output()).not.toMatch(/handshake complete/);

    // 5. Revocation: the agent exits with the revocation code and the operator's reason…
    await admin(AgentService).revokeAgent({ id: agentId, reason: "e2e says goodbye" });
    expect(await rerun.exited, rerun.output()).toBe(EXIT.REVOKED);
    expect(rerun.output()).toMatch(/e2e says goodbye/);
    for (const out of [run.output(), rerun.output()]) expect(out).not.toMatch(/agw[esk]_[A-Za-z0-9_-]{43}/);
    const state = JSON.parse(await fs.readFile(join(dir, "state.json"), "utf8")) as { revoked?: { reason: string } };
    expect(state.revoked?.reason).toBe("e2e says goodbye");
    await expect(fs.stat(join(dir, "session.json"))).rejects.toThrow();

    // …and a restart refuses from the local state, without contacting the gateway.
    const again = agentBin(["run", "--state-dir", dir]);
    expect(await again.exited).toBe(EXIT.REVOKED);
    expect(again.output()).toMatch(/was revoked .* refusing to start/);
    expect(again.output()).not.toMatch(/connected|handshake/);
  }, 240_000);
});
