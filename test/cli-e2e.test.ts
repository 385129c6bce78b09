import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { sendLocalEvents } from "../agent/lib/event-source.js";
import { EXIT as AGENT_EXIT } from "../agent/lib/errors.js";
import { EXIT } from "../cli/errors.js";
import { allCommands, declaredRpcs } from "../cli/command-table.js";
import { commandPath } from "../cli/context.js";
import { buildProgram } from "../cli/program.js";
import { type CliProcess, type CliResult, cliEnv, runCliProcess, startCli, startCliOnTty } from "./support/agwctl.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";

/**
 * The operator's whole day-2 loop with real processes: the agwctl binary against a real gateway
 * on real PostgreSQL, and the reference agent enrolling with --wait and applying a rollout
 * through its update hook. Every command runs at least once with `-o json` and its output is
 * parsed (the last test checks that against the command tree).
 */

const ROOT = fileURLToPath(new URL("..", import.meta.url));
let gw: TestGateway;
let dir: string;
let env: NodeJS.ProcessEnv;
const children: ChildProcess[] = [];
const jsonChecked = new Set<string>();
const leafPaths = allCommands(buildProgram({ stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: {} }))
  .filter((c) => declaredRpcs(c) !== undefined)
  .map(commandPath);

/** The command path ("agents list") of an argv, for the coverage bookkeeping. */
function pathOf(args: string[]): string {
  const words = args.filter((a) => !a.startsWith("-"));
  for (let n = Math.min(words.length, 2); n > 0; n--) {
    const path = words.slice(0, n).join(" ");
    if (leafPaths.includes(path)) return path;
  }
  return words.join(" ");
}

async function cli(args: string[], input = "", extraEnv: Record<string, string> = {}): Promise<CliResult> {
  return await runCliProcess(args, { ...env, ...extraEnv }, input);
}

/** Runs a command with `-o json`, expects exit 0 and returns the parsed output. */
async function json<T = Record<string, unknown>>(args: string[], input = ""): Promise<T> {
  const res = await cli([...args, "-o", "json"], input);
  expect(res.code, `agwctl ${args.join(" ")}\n${res.stdout}\n${res.stderr}`).toBe(0);
  const parsed = JSON.parse(res.stdout) as T;
  jsonChecked.add(pathOf(args));
  return parsed;
}

/** Parses NDJSON, every line. */
function ndjson<T = Record<string, unknown>>(text: string): T[] {
  return text
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as T);
}

function agentProcess(args: string[]): CliProcess & { child: ChildProcess } {
  const child = spawn(process.execPath, ["--import", "tsx", ...args], {
    cwd: ROOT,
    env: { ...process.env, AGW_ENROLLMENT_TOKEN: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let out = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    output: () => out,
    stdout: () => out,
    exited,
    async waitFor(pattern, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = pattern.exec(out);
        if (match) return match;
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`no ${pattern} in the agent's output:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

beforeAll(async () => {
  gw = await startTestGateway({ heartbeatFlushInterval: "200ms" });
  dir = await mkdtemp(join(tmpdir(), "agwctl-e2e-"));
  env = cliEnv(join(dir, "config"));
}, 90_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await gw?.stop();
  await rm(dir, { recursive: true, force: true });
});

interface Agent {
  id: string;
  name: string;
  state: string;
  verificationCode: string;
  agentVersion: string;
}

describe("agwctl end to end", () => {
  let agentId = "";
  let agentRun: CliProcess | undefined;
  let completedRollout = "";
  const stateDir = () => join(dir, "agent");

  it("logs in with the key on stdin, saves it 0600, and never prints it", async () => {
    const login = await cli(["login", "--server", gw.url], `${gw.adminKey}\n`);
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toMatch(/Logged in/);
    const configFile = join(dir, "config", "agwctl", "config.json");
    expect((await stat(configFile)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, "config", "agwctl"))).mode & 0o777).toBe(0o700);
    expect(JSON.parse(await readFile(configFile, "utf8"))).toMatchObject({ server: gw.url, apiKey: gw.adminKey });
    const me = await json<{ key: { role: string }; tenantName: string }>(["whoami"]);
    expect(me.key.role).toBe("ROLE_ADMIN");
    const again = await json<{ key: { id: string } }>(["login", "--server", gw.url], gw.adminKey);
    expect(again.key.id).toBeTruthy();
    for (const out of [login.stdout, login.stderr, JSON.stringify(me), JSON.stringify(again)]) expect(out).not.toContain(gw.adminKey);
  });

  it("enrolls the reference agent with --wait, shows its code while pending, and approves it with that code", async () => {
    const keygen = await json<{ publicKey: string }>(["release", "keygen", "--out", join(dir, "release.key")]);
    expect(keygen.publicKey).toMatch(/^[0-9a-f]{64}$/);
    await writeFile(join(dir, "release.pub"), keygen.publicKey);

    const tokenRes = await cli([
      "tokens",
      "create",
      "--approval",
      "--uses",
      "1",
      "--ttl",
      "10m",
      "--labels",
      "suite=cli",
      "--description",
      "e2e",
      "--secret-only",
    ]);
    expect(tokenRes.code, tokenRes.stderr).toBe(0);
    const token = tokenRes.stdout.trim();
    expect(token).toMatch(/^agwe_/);
    await writeFile(join(dir, "token"), token, { mode: 0o600 });

    const enroll = agentProcess([
      "agent/main.ts",
      "enroll",
      "--server",
      gw.url,
      "--token-file",
      join(dir, "token"),
      "--name",
      "cli-agent",
      "--labels",
      "claimed=by-agent",
      "--state-dir",
      stateDir(),
      "--release-key",
      keygen.publicKey,
      "--wait",
    ]);
    const printed = (await enroll.waitFor(/Verification code: ([0-9A-Z]{4}-[0-9A-Z]{4})/))[1] ?? "";
    await enroll.waitFor(/awaiting approval/);

    const pending = await json<{ agents: Agent[] }>(["agents", "list", "--state", "pending"]);
    const mine = pending.agents.find((a) => a.name === "cli-agent");
    expect(mine?.state).toBe("AGENT_STATE_PENDING_APPROVAL");
    expect(mine?.verificationCode).toBe(printed);
    agentId = mine?.id ?? "";
    const table = await cli(["agents", "list", "--state", "pending"]);
    expect(table.stdout).toMatch(new RegExp(`${agentId}\\s+cli-agent\\s+PENDING_APPROVAL.*${printed}`));

    // Without --code and without a terminal it refuses; a wrong code is refused by the gateway.
    const refused = await cli(["agents", "approve", agentId]);
    expect(refused.code).toBe(EXIT.USAGE);
    expect(refused.stderr).toMatch(/refusing to approve without --code/);
    const wrong = await cli(["agents", "approve", agentId, "--code", "AAAA-AAAA"]);
    expect(wrong.code).toBe(EXIT.CONFLICT);
    expect(wrong.stderr).toMatch(/verification code does not match/);

    const approved = await json<{ agent: Agent }>(["agents", "approve", agentId, "--code", printed]);
    expect(approved.agent.state).toBe("AGENT_STATE_ACTIVE");
    expect(await enroll.exited, enroll.output()).toBe(0);
  }, 120_000);

  it("shows the running agent, its telemetry and its events", async () => {
    const hook = `v="$AGW_RELEASE_VERSION"; if [ "$v" = 3.0.0 ]; then echo "3.0.0 is broken" >&2; exit 1; fi; echo "$v"`;
    agentRun = agentProcess(["agent/main.ts", "run", "--state-dir", stateDir(), "--telemetry-interval", "1s", "--update-command", hook, "--log-level", "info"]);
    await agentRun.waitFor(/connected: control stream open/);
    const got = await json<{ agent: Agent }>(["agents", "get", agentId]);
    expect(got.agent.state).toBe("AGENT_STATE_ACTIVE");
    const points = await until("telemetry", async () => {
      const res = await json<{ points: Array<{ name: string }> }>(["agents", "telemetry", agentId, "--limit", "10"]);
      return res.points.length ? res.points : undefined;
    });
    expect(points.length).toBeGreaterThan(0);

    const follow = startCli(["agents", "events", agentId, "--follow", "--interval", "300ms", "-o", "json"], env);
    children.push(follow.child);
    const answers = await sendLocalEvents(join(stateDir(), "events.sock"), [{ type: "e2e.hello", severity: "info", message: "hello from the e2e" }]);
    expect(answers.every((a) => a.ok)).toBe(true);
    await follow.waitFor(/hello from the e2e/, 30_000);
    follow.child.kill("SIGTERM");
    const followed = ndjson<{ event: { message: string } }>(follow.stdout());
    expect(followed.map((e) => e.event.message)).toContain("hello from the e2e");
    jsonChecked.add("agents events");
    const events = await json<{ events: Array<{ event: { message: string } }> }>(["agents", "events", agentId, "--since", "1h"]);
    expect(events.events.map((e) => e.event.message)).toContain("hello from the e2e");
  }, 120_000);

  it("rolls a signed release out and watches it to completion; a failing release halts the watch", async () => {
    const { publicKey } = { publicKey: (await readFile(join(dir, "release.pub"), "utf8")).trim() };
    const registered = await json<{ key: { id: string } }>(["release-keys", "register", "--name", "release-e2e", "--public-key", publicKey]);
    const keys = await json<{ keys: Array<{ id: string }> }>(["release-keys", "list"]);
    expect(keys.keys.map((k) => k.id)).toContain(registered.key.id);

    const artifact = join(dir, "agent-2.0.0.tgz");
    await writeFile(artifact, "not really a tarball");
    const sign = (version: string, out: string) =>
      cli([
        "release",
        "sign",
        "--key",
        join(dir, "release.key"),
        "--version",
        version,
        "--artifact-url",
        `https://releases.example.invalid/${version}.tgz`,
        "--artifact",
        artifact,
        "--out",
        out,
      ]);
    expect((await sign("2.0.0", join(dir, "m2.json"))).code).toBe(0);
    const manifest = JSON.parse(await readFile(join(dir, "m2.json"), "utf8")) as { releasePublicKey: string };
    expect(Buffer.from(manifest.releasePublicKey, "base64").toString("hex")).toBe(publicKey);
    const signedToStdout = await json<{ signature: string }>([
      "release",
      "sign",
      "--key",
      join(dir, "release.key"),
      "--version",
      "2.0.0",
      "--artifact-url",
      "https://r.invalid/a",
      "--sha256",
      createHash("sha256").update("x").digest("hex"),
      "--size",
      "1",
    ]);
    expect(signedToStdout.signature).toBeTruthy();

    // Two waves: the labelled canary (our agent) and an empty rest, advanced by hand.
    const waves = ["--wave", "canary:suite=cli", "--wave", "rest=100", "--verify-window", "2m"];
    const plan = await json<{ waves: Array<{ memberIds: string[] }> }>(["rollouts", "plan", "--manifest", join(dir, "m2.json"), ...waves]);
    expect(plan.waves.map((w) => w.memberIds)).toEqual([[agentId], []]);
    const created = await json<{ rollout: { id: string; state: string } }>(["rollouts", "create", "--manifest", join(dir, "m2.json"), ...waves]);
    expect(created.rollout.state).toBe("ROLLOUT_STATE_PLANNED");
    const id = created.rollout.id;
    completedRollout = id;
    const watch = startCli(["rollouts", "watch", id, "-o", "json"], env);
    children.push(watch.child);
    await watch.waitFor(/ROLLOUT_STATE_PLANNED/);
    const started = await json<{ rollout: { state: string } }>(["rollouts", "start", id]);
    expect(started.rollout.state).toBe("ROLLOUT_STATE_RUNNING");
    await until("the canary wave to succeed", async () => {
      const r = await json<{ rollout: { waves: Array<{ state: string }> } }>(["rollouts", "get", id]);
      return r.rollout.waves[0]?.state === "WAVE_STATE_SUCCEEDED" ? true : undefined;
    });
    expect(watch.child.exitCode).toBe(null);
    const advanced = await json<{ rollout: { currentWave: number } }>(["rollouts", "advance", id]);
    expect(advanced.rollout.currentWave).toBe(1);
    expect(await watch.exited, watch.output()).toBe(0);
    const updates = ndjson<{ rollout: { state: string; waves: Array<{ succeeded: number }> } }>(watch.stdout());
    jsonChecked.add("rollouts watch");
    expect(updates[0]?.rollout.state).toBe("ROLLOUT_STATE_PLANNED");
    expect(updates.map((u) => u.rollout.state)).toContain("ROLLOUT_STATE_RUNNING");
    expect(updates.at(-1)?.rollout.state).toBe("ROLLOUT_STATE_COMPLETED");
    expect(updates.at(-1)?.rollout.waves[0]?.succeeded).toBe(1);
    const agent = await json<{ agent: Agent }>(["agents", "get", agentId]);
    expect(agent.agent.agentVersion).toBe("2.0.0");
    const listed = await json<{ rollouts: Array<{ id: string; state: string }> }>(["rollouts", "list"]);
    expect(listed.rollouts.find((r) => r.id === id)?.state).toBe("ROLLOUT_STATE_COMPLETED");

    // 3.0.0 fails in the hook: the rollout halts, and watch says so with its own exit code.
    expect((await sign("3.0.0", join(dir, "m3.json"))).code).toBe(0);
    const bad = await json<{ rollout: { id: string } }>(["rollouts", "create", "--manifest", join(dir, "m3.json"), ...waves]);
    const badId = bad.rollout.id;
    await json(["rollouts", "start", badId]);
    const halted = await cli(["rollouts", "watch", badId]);
    expect(halted.code, halted.stderr).toBe(EXIT.ROLLOUT_HALTED);
    expect(halted.stdout).toMatch(/3\.0\.0 HALTED wave 1\/2 canary/);
    expect(halted.stderr).toMatch(/halted: wave canary: 1 member\(s\) failed/);
    const detail = await json<{ rollout: { state: string; failures: Array<{ agentId: string; reason: string }> } }>(["rollouts", "get", badId]);
    expect(detail.rollout.state).toBe("ROLLOUT_STATE_HALTED");
    expect(detail.rollout.failures[0]?.agentId).toBe(agentId);
    expect(detail.rollout.failures[0]?.reason).toMatch(/3\.0\.0 is broken/);
    const retried = await json<{ rollout: { id: string } }>(["rollouts", "retry", badId]);
    expect(retried.rollout.id).toBe(badId);
    await until("the retry to fail again", async () => {
      const r = await json<{ rollout: { waves: Array<{ pending: number; applying: number; failed: number }> } }>(["rollouts", "get", badId]);
      const w = r.rollout.waves[0];
      return w && w.pending + w.applying === 0 && w.failed === 1 ? true : undefined;
    });
    const resumed = await json<{ rollout: { state: string; resumeNotes: string[] } }>(["rollouts", "resume", badId, "--note", "checked by e2e"]);
    expect(resumed.rollout.state).toBe("ROLLOUT_STATE_RUNNING");
    expect(resumed.rollout.resumeNotes).toContain("checked by e2e");
    const haltedByHand = await json<{ rollout: { state: string; haltReason: string } }>(["rollouts", "halt", badId, "--reason", "e2e halts it"]);
    expect(haltedByHand.rollout.state).toBe("ROLLOUT_STATE_HALTED");
    expect(haltedByHand.rollout.haltReason).toBe("e2e halts it");
    const advanceHalted = await cli(["rollouts", "advance", badId, "-o", "json"]);
    expect(advanceHalted.code).toBe(EXIT.CONFLICT);
    expect(JSON.parse(advanceHalted.stderr).error).toMatchObject({ code: "FAILED_PRECONDITION", exitCode: EXIT.CONFLICT });
    const cancelled = await json<{ rollout: { state: string } }>(["rollouts", "cancel", badId, "--reason", "e2e is done"]);
    expect(cancelled.rollout.state).toBe("ROLLOUT_STATE_CANCELLED");
    const watchCancelled = await cli(["rollouts", "watch", badId]);
    expect(watchCancelled.code).toBe(EXIT.ROLLOUT_CANCELLED);
  }, 240_000);

  it("renders tables, YAML and --quiet, filters agents, and draws progress and colour only on a terminal", async () => {
    const yaml = await cli(["agents", "get", agentId, "-o", "yaml"]);
    expect(parseYaml(yaml.stdout)).toMatchObject({ agent: { id: agentId, state: "AGENT_STATE_ACTIVE", agentVersion: "2.0.0" } });
    const quiet = await cli(["agents", "list", "-q"]);
    expect(quiet.stdout.trim().split("\n")).toContain(agentId);
    expect(quiet.stdout).not.toMatch(/NAME|cli-agent/);
    const byVersion = await json<{ agents: Agent[] }>(["agents", "list", "--version", "2.0.0", "--liveness", "online", "--label", "suite=cli"]);
    expect(byVersion.agents.map((a) => a.id)).toEqual([agentId]);
    expect((await json<{ agents: Agent[] }>(["agents", "list", "--version", "9.9.9"])).agents).toEqual([]);
    expect((await json<{ agents: Agent[] }>(["agents", "list", "--host-label", "claimed=by-agent"])).agents.map((a) => a.id)).toEqual([agentId]);
    // What an agent claims about itself is not an operator label.
    expect((await json<{ agents: Agent[] }>(["agents", "list", "--label", "claimed=by-agent"])).agents).toEqual([]);
    for (const args of [
      ["agents", "get", agentId],
      ["rollouts", "get", completedRollout],
      ["rollouts", "list"],
      ["tokens", "list", "--all"],
      ["keys", "list"],
      ["audit", "list"],
      ["whoami"],
    ]) {
      const table = await cli(args);
      expect(table.code, `${args.join(" ")}: ${table.stderr}`).toBe(0);
      expect(table.stdout.length, args.join(" ")).toBeGreaterThan(20);
      expect(table.stdout).not.toContain("\x1b[");
    }
    expect((await cli(["rollouts", "get", completedRollout])).stdout).toMatch(/state: +COMPLETED[\s\S]*canary +SUCCEEDED +1 +0 +0 +1 +0/);

    const { NO_COLOR: _unset, ...colourEnv } = env;
    const onTty = startCliOnTty(["rollouts", "watch", completedRollout], colourEnv);
    children.push(onTty.child);
    expect(await onTty.exited, onTty.output()).toBe(0);
    expect(onTty.output()).toMatch(/2\.0\.0 .*COMPLETED.* wave 2\/2 rest \[█+\] 0\/0 succeeded/);
    expect(onTty.output()).toContain("\x1b[32mCOMPLETED\x1b[39m");
    const piped = await runCliProcess(["agents", "list"], colourEnv);
    expect(piped.stdout).toContain(agentId);
    expect(piped.stdout).not.toContain("\x1b[");
    const noColour = startCliOnTty(["agents", "list"], env);
    children.push(noColour.child);
    expect(await noColour.exited).toBe(0);
    expect(noColour.output()).toContain(agentId);
    expect(noColour.output()).not.toMatch(new RegExp(`${"\x1b"}\\[3\\dm`));
  }, 120_000);

  it("revokes the agent, which stops for good, and the audit chain verifies", async () => {
    const revoked = await json<{ agent: Agent }>(["agents", "revoke", agentId, "--reason", "cli e2e says goodbye"]);
    expect(revoked.agent.state).toBe("AGENT_STATE_REVOKED");
    expect(await agentRun?.exited, agentRun?.output()).toBe(AGENT_EXIT.REVOKED);
    expect(agentRun?.output()).toMatch(/cli e2e says goodbye/);

    const verdict = await json<{ ok: boolean; checked: string }>(["audit", "verify"]);
    expect(verdict.ok).toBe(true);
    expect(Number(verdict.checked)).toBeGreaterThan(5);
    const human = await cli(["audit", "verify"]);
    expect(human.stdout).toMatch(/Audit chain intact: \d+ records checked/);

    const audit = await json<{ events: Array<{ action: string; seq: string }> }>(["audit", "list", "--limit", "0"]);
    expect(audit.events.map((e) => e.action)).toEqual(
      expect.arrayContaining(["enrollment_token.created", "agent.registered", "agent.approved", "rollout.created", "agent.revoked"]),
    );
    const onlyRevoked = await json<{ events: Array<{ action: string }> }>(["audit", "list", "--action", "agent.revoked"]);
    expect(onlyRevoked.events.map((e) => e.action)).toEqual(["agent.revoked"]);

    // The agent's own audit records, by --agent and by --target: nothing about other subjects.
    const ofAgent = await json<{ events: Array<{ action: string; target: string; seq: string }> }>(["audit", "list", "--agent", agentId, "--limit", "0"]);
    expect(ofAgent.events.map((e) => e.action)).toEqual(expect.arrayContaining(["agent.registered", "agent.approved", "agent.revoked"]));
    expect(new Set(ofAgent.events.map((e) => e.target))).toEqual(new Set([`agent:${agentId}`]));
    const byTarget = await json<{ events: Array<{ seq: string }> }>(["audit", "list", "--target", `agent:${agentId}`, "--limit", "0"]);
    expect(byTarget.events.map((e) => e.seq)).toEqual(ofAgent.events.map((e) => e.seq));
    expect((await cli(["audit", "list", "--agent", "web-1"])).code).toBe(EXIT.USAGE);

    // What the gateway queued for it: the rollout directives, the 2.0.0 one applied and the
    // failing 3.0.0 one with the agent's reason; nothing left pending.
    const queued = await json<{ commands: Array<{ kind: string; state: string; ref: string; ackReason: string; command: { rollout?: unknown } }> }>([
      "agents",
      "commands",
      agentId,
    ]);
    expect(queued.commands.length).toBeGreaterThan(0);
    expect(queued.commands.every((c) => c.kind === "rollout" && c.command.rollout !== undefined)).toBe(true);
    expect(queued.commands.map((c) => c.state)).toContain("AGENT_COMMAND_STATE_APPLIED");
    expect(queued.commands.find((c) => c.state === "AGENT_COMMAND_STATE_FAILED")?.ackReason).toMatch(/./);
    expect(queued.commands.find((c) => c.ref === completedRollout)?.state).toBe("AGENT_COMMAND_STATE_APPLIED");
    const pending = await json<{ commands: unknown[] }>(["agents", "commands", agentId, "--pending"]);
    expect(pending.commands).toEqual([]);
    expect((await cli(["agents", "commands", agentId, "--pending"])).stdout).toMatch(/No pending commands/);
  }, 120_000);

  it("exports the audit log as NDJSON from a cursor, resumably", async () => {
    const cursorFile = join(dir, "audit.cursor");
    const first = await cli(["audit", "export", "--cursor-file", cursorFile]);
    expect(first.code, first.stderr).toBe(0);
    const records = ndjson<{ seq: string; action: string }>(first.stdout);
    jsonChecked.add("audit export");
    expect(records.map((r) => Number(r.seq))).toEqual(records.map((_, i) => i + 1));
    expect((await readFile(cursorFile, "utf8")).trim()).toBe(records.at(-1)?.seq);
    expect(first.stderr).toMatch(new RegExp(`cursor ${records.at(-1)?.seq}`));

    // Nothing new: nothing exported. Something new: only that.
    const again = await cli(["audit", "export", "--cursor-file", cursorFile]);
    expect(ndjson(again.stdout)).toEqual([]);
    await json(["agents", "unrevoke", agentId, "--note", "key verified again"]);
    const next = await cli(["audit", "export", "--cursor-file", cursorFile]);
    const fresh = ndjson<{ seq: string; action: string }>(next.stdout);
    // The un-revoked agent is ACTIVE again and its process is gone, so the liveness sweeper may
    // record it going offline right after: the only other record that may follow.
    expect(fresh[0]?.action).toBe("agent.unrevoked");
    expect(fresh.slice(1).filter((r) => r.action !== "agent.liveness_changed")).toEqual([]);
    expect(fresh.map((r) => Number(r.seq))).toEqual(fresh.map((_, i) => records.length + 1 + i));
    const fromSeq = await cli(["audit", "export", "--after", String(records.length - 1)]);
    expect(ndjson<{ seq: string }>(fromSeq.stdout).map((r) => Number(r.seq)).slice(0, 2)).toEqual([records.length, records.length + 1]);

    const follow = startCli(["audit", "list", "--follow", "--interval", "300ms", "-o", "json", "--after", String(records.length + 1)], env);
    children.push(follow.child);
    await json(["agents", "retire", agentId, "--reason", "end of e2e"]);
    await follow.waitFor(/agent\.retired/, 30_000);
    follow.child.kill("SIGTERM");
    expect(ndjson<{ action: string }>(follow.stdout()).map((e) => e.action)).toContain("agent.retired");
    jsonChecked.add("audit list");
  }, 120_000);

  it("manages tokens, release keys and operator keys, and rejects a pending agent", async () => {
    const created = await json<{ token: { id: string; usesLeft: number }; secret: string }>([
      "tokens",
      "create",
      "--uses",
      "2",
      "--approval",
      "--name",
      "reject-me",
    ]);
    expect(created.secret).toMatch(/^agwe_/);
    const listed = await json<{ tokens: Array<{ id: string }> }>(["tokens", "list"]);
    expect(listed.tokens.map((t) => t.id)).toContain(created.token.id);
    expect(JSON.stringify(listed)).not.toContain(created.secret);

    await writeFile(join(dir, "token2"), created.secret, { mode: 0o600 });
    const enroll = agentProcess([
      "agent/main.ts",
      "enroll",
      "--server",
      gw.url,
      "--token-file",
      join(dir, "token2"),
      "--name",
      "reject-me",
      "--state-dir",
      join(dir, "agent2"),
    ]);
    expect(await enroll.exited, enroll.output()).toBe(0);
    const pending = await json<{ agents: Agent[] }>(["agents", "list", "--state", "pending", "--name", "reject-*"]);
    expect(pending.agents.map((a) => a.name)).toEqual(["reject-me"]);
    const rejected = await json<{ agent: Agent }>(["agents", "reject", pending.agents[0]?.id ?? "", "--reason", "not ours"]);
    expect(rejected.agent.state).toBe("AGENT_STATE_REJECTED");

    const revokedToken = await json<{ token: { state: string } }>(["tokens", "revoke", created.token.id]);
    expect(revokedToken.token.state).toBe("ENROLLMENT_TOKEN_STATE_REVOKED");
    const releaseKeys = await json<{ keys: Array<{ id: string }> }>(["release-keys", "list"]);
    const revokedKey = await json<{ key: { revokedAt: string | null } }>(["release-keys", "revoke", releaseKeys.keys[0]?.id ?? ""]);
    expect(revokedKey.key.revokedAt).toBeTruthy();

    const key = await json<{ key: { id: string; role: string }; secret: string }>(["keys", "create", "--name", "e2e-editor", "--role", "editor"]);
    expect(key.key.role).toBe("ROLE_EDITOR");
    const keys = await json<{ keys: Array<{ id: string }> }>(["keys", "list"]);
    expect(keys.keys.map((k) => k.id)).toContain(key.key.id);
    expect(JSON.stringify(keys)).not.toContain(key.secret);
    await json(["keys", "revoke", key.key.id]);
    const refused = await cli(["whoami"], "", { AGW_API_KEY: key.secret });
    expect(refused.code).toBe(EXIT.UNAUTHENTICATED);
  }, 120_000);

  it("asks on a terminal before approving without --code", async () => {
    // A watch on pending agents, opened before the agent exists, sees it arrive.
    const watch = startCli(["agents", "watch", "--state", "pending", "-o", "json"], env);
    children.push(watch.child);
    await watch.waitFor(/"snapshotComplete":\s*true/);
    const { secret } = await json<{ secret: string }>(["tokens", "create", "--approval"]);
    await writeFile(join(dir, "token3"), secret, { mode: 0o600 });
    const enroll = agentProcess([
      "agent/main.ts",
      "enroll",
      "--server",
      gw.url,
      "--token-file",
      join(dir, "token3"),
      "--name",
      "tty-agent",
      "--state-dir",
      join(dir, "agent3"),
    ]);
    const code = (await enroll.waitFor(/Verification code: ([0-9A-Z]{4}-[0-9A-Z]{4})/))[1] ?? "";
    expect(await enroll.exited).toBe(0);
    const [agent] = (await json<{ agents: Agent[] }>(["agents", "list", "--name", "tty-agent"])).agents;
    await watch.waitFor(/"name":\s*"tty-agent"/);
    const watched = ndjson<{ agents?: Agent[] }>(watch.stdout()).flatMap((u) => u.agents ?? []);
    expect(watched.find((a) => a.name === "tty-agent")?.state).toBe("AGENT_STATE_PENDING_APPROVAL");
    watch.child.kill("SIGTERM");
    jsonChecked.add("agents watch");

    const declined = startCliOnTty(["agents", "approve", agent?.id ?? ""], env);
    children.push(declined.child);
    await declined.waitFor(new RegExp(`${code}[\\s\\S]*Approve \\[y/N\\]`));
    declined.child.stdin?.write("n\r");
    expect(await declined.exited).toBe(EXIT.FAILURE);
    expect((await json<{ agent: Agent }>(["agents", "get", agent?.id ?? ""])).agent.state).toBe("AGENT_STATE_PENDING_APPROVAL");

    const accepted = startCliOnTty(["agents", "approve", agent?.id ?? ""], env);
    children.push(accepted.child);
    await accepted.waitFor(/Approve \[y\/N\]/);
    accepted.child.stdin?.write("y\r");
    expect(await accepted.exited, accepted.output()).toBe(0);
    expect((await json<{ agent: Agent }>(["agents", "get", agent?.id ?? ""])).agent.state).toBe("AGENT_STATE_ACTIVE");

    // --once prints the snapshot and exits; the approved agent has left the pending view.
    const once = await cli(["agents", "watch", "--once", "--name", "tty-agent", "-o", "json"]);
    expect(once.code, once.stderr).toBe(0);
    const snapshot = ndjson<{ agents?: Agent[]; snapshotComplete?: boolean }>(once.stdout);
    expect(snapshot.at(-1)?.snapshotComplete).toBe(true);
    expect(snapshot.flatMap((u) => u.agents ?? []).map((a) => a.state)).toEqual(["AGENT_STATE_ACTIVE"]);
  }, 120_000);

  it("manages tenants with the system key: create, list, get, suspend, resume, delete, and the provider audit", async () => {
    const provider = async <T = Record<string, unknown>>(args: string[]): Promise<T> => {
      const res = await cli([...args, "-o", "json"], "", { AGW_SYSTEM_KEY: gw.systemKey });
      expect(res.code, `agwctl ${args.join(" ")}\n${res.stdout}\n${res.stderr}`).toBe(0);
      jsonChecked.add(pathOf(args));
      return JSON.parse(res.stdout) as T;
    };
    const created = await provider<{ tenant: { id: string; name: string }; adminKeySecret: string }>(["tenants", "create", "cli-tenant"]);
    expect(created.tenant.name).toBe("cli-tenant");
    expect(created.adminKeySecret).toMatch(/^agwk_/);
    const secretOnly = await cli(["tenants", "create", "cli-tenant-2", "--secret-only"], "", { AGW_SYSTEM_KEY: gw.systemKey });
    expect(secretOnly.stdout.trim()).toMatch(/^agwk_/);
    const id = created.tenant.id;
    const listed = await provider<{ tenants: Array<{ id: string }> }>(["tenants", "list"]);
    expect(listed.tenants.map((t) => t.id)).toContain(id);
    const got = await provider<{ tenant: { state: string }; usage: { activeApiKeys: string } }>(["tenants", "get", id]);
    expect(got.tenant.state).toBe("TENANT_STATE_ACTIVE");
    expect(got.usage.activeApiKeys).toBe("1");
    const suspended = await provider<{ tenant: { state: string; suspendReason: string } }>(["tenants", "suspend", id, "--reason", "cli test"]);
    expect(suspended.tenant).toMatchObject({ state: "TENANT_STATE_SUSPENDED", suspendReason: "cli test" });
    // The tenant's own key is refused with a sentence that says why.
    const refused = await cli(["whoami"], "", { AGW_API_KEY: created.adminKeySecret });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/suspended/);
    expect((await provider<{ tenant: { state: string } }>(["tenants", "resume", id])).tenant.state).toBe("TENANT_STATE_ACTIVE");
    // A tenant key cannot manage tenants: the CLI says the system key is needed.
    const noSystem = await cli(["tenants", "list"], "", { AGW_API_KEY: created.adminKeySecret });
    expect(noSystem.code).not.toBe(0);
    expect(noSystem.stderr).toMatch(/system key/);
    await provider(["tenants", "delete", id]);
    const gone = await cli(["tenants", "get", id], "", { AGW_SYSTEM_KEY: gw.systemKey });
    expect(gone.code).toBe(EXIT.NOT_FOUND);
    const audit = await provider<{ events: Array<{ action: string }> }>(["tenants", "audit", "--limit", "1000"]);
    expect(audit.events.map((e) => e.action)).toEqual(expect.arrayContaining(["tenant.created", "tenant.suspended", "tenant.resumed", "tenant.deleted"]));
    expect((await provider<{ ok: boolean }>(["tenants", "verify-audit"])).ok).toBe(true);
    for (const out of [JSON.stringify(listed), JSON.stringify(got), JSON.stringify(audit)]) expect(out).not.toContain(gw.systemKey);
  }, 180_000);

  it("rotates the system key: the new secret is printed once, the old key stops working", async () => {
    const me = await cli(["system-key", "whoami", "-o", "json"], "", { AGW_SYSTEM_KEY: gw.systemKey });
    expect(me.code, me.stderr).toBe(0);
    jsonChecked.add("system-key whoami");
    const before = JSON.parse(me.stdout) as { key: { id: string } };
    // A tenant's admin key cannot rotate the provider's key.
    const denied = await cli(["system-key", "rotate"], "", { AGW_API_KEY: gw.adminKey });
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/system key/);
    const res = await cli(["system-key", "rotate", "--name", "cli-rotated", "-o", "json"], "", { AGW_SYSTEM_KEY: gw.systemKey });
    expect(res.code, res.stderr).toBe(0);
    jsonChecked.add("system-key rotate");
    const rotated = JSON.parse(res.stdout) as { key: { id: string; name: string }; secret: string; revokedKeyId: string };
    expect(rotated).toMatchObject({ key: { name: "cli-rotated" }, revokedKeyId: before.key.id });
    expect(rotated.secret).toMatch(/^agwp_/);
    const old = await cli(["tenants", "list"], "", { AGW_SYSTEM_KEY: gw.systemKey });
    expect(old.code).toBe(EXIT.UNAUTHENTICATED);
    const again = await cli(["system-key", "rotate", "--secret-only"], "", { AGW_SYSTEM_KEY: rotated.secret });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.trim()).toMatch(/^agwp_/);
    expect(again.stdout.trim()).not.toBe(rotated.secret);
    const after = await cli(["system-key", "whoami"], "", { AGW_SYSTEM_KEY: again.stdout.trim() });
    expect(after.code, after.stderr).toBe(0);
  }, 120_000);

  it("ran every command with -o json and parsed its output", async () => {
    await json(["version"]);
    const logout = await json<{ removed: boolean }>(["logout"]);
    expect(logout.removed).toBe(true);
    const local = ["completion"];
    expect(leafPaths).toEqual(expect.arrayContaining(["login", "agents approve", "rollouts watch", "audit export", "release sign"]));
    expect(leafPaths.filter((p) => !jsonChecked.has(p) && !local.includes(p))).toEqual([]);
  });
});
