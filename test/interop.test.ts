/**
 * Interop: clients that know nothing but proto/ and docs/protocol.md, in other languages and
 * generic tools, against a real gateway process (`npx tsx server/main.ts`, the way operators
 * run it) on a fresh PostgreSQL database.
 *
 * - Python (grpcio, native gRPC over h2c): the whole agent flow, from enrollment with operator
 *   approval to revocation (test/interop/python/agent.py), and the test vectors
 *   (test/interop/python/check_vectors.py).
 * - Go (Debian's grpc-go, GOPATH mode): register, handshake, heartbeat (test/interop/go/).
 * - buf curl (reflection) and plain curl (Connect JSON) over every protocol (test/interop/tools.sh).
 *
 * A part is skipped only when its toolchain is missing on this machine (the test name says which
 * packages to install; see test/interop/README.md) or, for the ControlStream part, while the
 * gateway answers UNIMPLEMENTED; each skip says why.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash, generateKeyPairSync, randomBytes, sign as cryptoSign } from "node:crypto";
import { accessSync, constants, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs, timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService, Liveness } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { EnrollmentTokenService } from "../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { ReleaseKeyService } from "../gen/agentgateway/admin/v1/release_keys_pb.js";
import { RolloutService, RolloutState, WaveState } from "../gen/agentgateway/admin/v1/rollouts_pb.js";
import { ReleaseManifestSchema } from "../gen/agentgateway/v1/release_pb.js";
import { AgentState } from "../gen/agentgateway/v1/common_pb.js";
import { adminClient } from "./support/admin.js";
import { createTestDatabase, type TestDatabase } from "./support/database.js";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const PYTHON = "/usr/bin/python3";
const GO = "/usr/bin/go";
const INTEROP = join(REPO, "test", "interop");
const APT = "apt-get install -y python3-grpcio python3-grpc-tools python3-cryptography golang-go golang-google-grpc-dev golang-goprotobuf-dev protobuf-compiler libprotobuf-dev";

// Agent exit codes (test/interop/python/agent.py).
const EXIT_REVOKED = 10;
const EXIT_REVOKED_NO_STREAM = 11;

// ---- toolchain detection: skip a part only when its tools are missing, and say so ----------

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

function pythonMissing(): string | undefined {
  if (!existsSync(PYTHON)) return `${PYTHON} not found`;
  try {
    execFileSync(PYTHON, ["-c", "import grpc, grpc_tools.protoc, cryptography"], { stdio: "pipe" });
    return undefined;
  } catch (err) {
    return `${PYTHON} cannot import grpc, grpc_tools, cryptography (${String((err as { stderr?: Buffer }).stderr ?? err).trim().split("\n").at(-1)})`;
  }
}

function goMissing(): string | undefined {
  if (!existsSync(GO)) return `${GO} not found`;
  if (!onPath("protoc")) return "protoc not found";
  if (!onPath("protoc-gen-go")) return "protoc-gen-go not found";
  if (!existsSync("/usr/share/gocode/src/google.golang.org/grpc")) return "/usr/share/gocode/src/google.golang.org/grpc not found";
  if (!existsSync("/usr/include/google/protobuf/timestamp.proto")) return "/usr/include/google/protobuf/*.proto not found";
  return undefined;
}

function toolsMissing(): string | undefined {
  if (!existsSync(join(REPO, "node_modules", ".bin", "buf"))) return "node_modules/.bin/buf not found (npm ci)";
  if (!onPath("curl")) return "curl not found";
  if (!onPath("bash")) return "bash not found";
  return undefined;
}

const missing = { python: pythonMissing(), go: goMissing(), tools: toolsMissing() };
for (const [part, why] of Object.entries(missing)) {
  if (why) console.warn(`[interop] SKIPPING the ${part} part: ${why}. Install: ${APT}`);
}
const skipNote = (part: keyof typeof missing) => (missing[part] ? ` [SKIPPED: ${missing[part]}; install: ${APT}]` : "");

// ---- child processes -----------------------------------------------------------------------

/** A child process whose stdout is JSON lines (plus anything else, kept for diagnostics). */
class JsonLines {
  readonly events: Record<string, unknown>[] = [];
  readonly output: string[] = [];
  readonly exited: Promise<number | null>;
  exitCode: number | null | undefined;
  private waiters: (() => void)[] = [];

  constructor(readonly name: string, readonly child: ChildProcess) {
    let buffered = "";
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      buffered += chunk;
      let newline = buffered.indexOf("\n");
      while (newline >= 0) {
        this.line(buffered.slice(0, newline), "out");
        buffered = buffered.slice(newline + 1);
        newline = buffered.indexOf("\n");
      }
    });
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      for (const line of chunk.split("\n")) if (line) this.line(line, "err");
    });
    this.exited = new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        if (buffered) this.line(buffered, "out");
        this.exitCode = code ?? (signal ? null : code);
        this.notify();
        resolve(code);
      });
      child.on("error", (err) => {
        this.output.push(`[spawn error] ${err.message}`);
        this.exitCode = null;
        this.notify();
        resolve(null);
      });
    });
  }

  private line(text: string, stream: "out" | "err"): void {
    this.output.push(stream === "err" ? `[stderr] ${text}` : text);
    if (this.output.length > 400) this.output.shift();
    if (stream === "out" && text.startsWith("{")) {
      try {
        this.events.push(JSON.parse(text) as Record<string, unknown>);
      } catch {}
    }
    this.notify();
  }

  private notify(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  /** Resolves with the first event matching `predicate`, rejects on exit or timeout. */
  async waitFor(predicate: (e: Record<string, unknown>) => boolean, what: string, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find(predicate);
      if (found) return found;
      if (this.exitCode !== undefined) throw new Error(`${this.name} exited (${this.exitCode}) before ${what}\n${this.tail()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what} from ${this.name}\n${this.tail()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  event(name: string): Record<string, unknown> | undefined {
    return this.events.find((e) => e.event === name);
  }

  all(name: string): Record<string, unknown>[] {
    return this.events.filter((e) => e.event === name);
  }

  tail(lines = 60): string {
    return `--- ${this.name} (last ${lines} lines) ---\n${this.output.slice(-lines).join("\n")}`;
  }

  /** Ends the process group this test started (agents, the gateway and their children). */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (this.exitCode !== undefined || this.child.pid === undefined) return;
    const pid = this.child.pid;
    try {
      process.kill(-pid, "SIGTERM");
    } catch {}
    const timer = setTimeout(() => {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {}
    }, timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }
}

const started: JsonLines[] = [];

function run(name: string, command: string, args: string[], env: NodeJS.ProcessEnv = {}): JsonLines {
  const child = spawn(command, args, {
    cwd: REPO,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group, so stop() ends its children too, and nothing else
  });
  const proc = new JsonLines(name, child);
  started.push(proc);
  return proc;
}

// ---- releases (signed here, as `agwctl release sign` would, offline) ------------------------

/** The release manifest transcript, written from docs/protocol.md (not the gateway's code). */
function releaseManifestTranscript(manifest: Uint8Array): Uint8Array {
  const context = Buffer.from("agentgateway/v1/release-manifest", "ascii");
  const out = Buffer.alloc(8 + context.length + manifest.length);
  out.writeUInt32BE(context.length, 0);
  context.copy(out, 4);
  out.writeUInt32BE(manifest.length, 4 + context.length);
  Buffer.from(manifest).copy(out, 8 + context.length);
  return out;
}

const releaseKey = generateKeyPairSync("ed25519");
const releasePublicKey = Buffer.from(String(releaseKey.publicKey.export({ format: "jwk" }).x), "base64url");
const ROLLOUT_VERSION = "1.0.0-interop";
const runLabel = randomBytes(4).toString("hex");

// ---- the gateway ---------------------------------------------------------------------------

let database: TestDatabase | undefined;
let gateway: JsonLines | undefined;
let baseUrl = "";
let target = "";
const adminKey = `interop-admin-${randomBytes(24).toString("hex")}`;

function admin<S extends DescService>(service: S): Client<S> {
  return adminClient(service, baseUrl, adminKey);
}

/** GetAgent until `done` holds (heartbeats are written in batches, so liveness lags a little). */
async function agentEventually(id: string, done: (a: NonNullable<Awaited<ReturnType<Client<typeof AgentService>["getAgent"]>>["agent"]>) => boolean, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { agent } = await admin(AgentService).getAgent({ id });
    if (!agent) throw new Error(`GetAgent ${id} returned no agent`);
    if (done(agent) || Date.now() > deadline) return agent;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function mintToken(options: { requiresApproval?: boolean; maxUses?: number; labels?: Record<string, string>; description: string }): Promise<string> {
  const res = await admin(EnrollmentTokenService).createEnrollmentToken({
    requiresApproval: options.requiresApproval ?? false,
    maxUses: options.maxUses ?? 1,
    labels: options.labels ?? {},
    ttl: durationFromMs(10 * 60_000),
    description: options.description,
  });
  expect(res.secret).toMatch(/^agwe_[A-Za-z0-9_-]{43}$/);
  return res.secret;
}

beforeAll(async () => {
  database = await createTestDatabase();
  gateway = run("gateway", "npx", ["tsx", "server/main.ts"], {
    AGW_LISTEN: "127.0.0.1:0",
    DATABASE_URL: database.url,
    AGW_BOOTSTRAP_ADMIN_KEY: adminKey,
    AGW_LOG_LEVEL: process.env.AGW_TEST_LOG_LEVEL ?? "warn",
    AGW_SHUTDOWN_GRACE: "2s",
    // Pings every 2 s on an idle stream, so the ping/pong exchange happens within the test.
    AGW_STREAM_PING_INTERVAL: "2s",
    AGW_HEARTBEAT_FLUSH_INTERVAL: "200ms",
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const line = gateway.output.find((l) => l.startsWith("AgentGateway listening on "));
    const match = line?.match(/listening on (http:\/\/[^\s]+)/);
    if (match?.[1]) {
      baseUrl = match[1];
      target = new URL(baseUrl).host;
      break;
    }
    if (gateway.exitCode !== undefined) throw new Error(`gateway exited (${gateway.exitCode}) before listening\n${gateway.tail()}`);
    if (Date.now() > deadline) throw new Error(`gateway did not print its URL within 60 s\n${gateway.tail()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}, 90_000);

afterAll(async () => {
  const others = started.filter((p) => p !== gateway);
  await Promise.all(others.map((p) => p.stop(3_000)));
  await gateway?.stop(15_000);
  await database?.drop();
}, 60_000);

// ---- Python: the whole agent flow ----------------------------------------------------------

describe.sequential("Python agent (grpcio over h2c, stubs generated from proto/)", () => {
  let agent: JsonLines | undefined;
  let agentId = "";
  let streamUnimplemented = false;
  let streamOpened = false;

  function requireAgent(): JsonLines {
    if (!agent) throw new Error("the Python agent did not start (see the first test of this block)");
    return agent;
  }

  it.skipIf(missing.python)(`enrolls, prints its verification code and waits for approval with backoff${skipNote("python")}`, async () => {
    const token = await mintToken({ requiresApproval: true, maxUses: 2, labels: { "interop-run": runLabel }, description: "interop python" });
    agent = run("python agent", PYTHON, [
      join(INTEROP, "python", "agent.py"),
      "--target", target,
      "--name", "py-interop-1",
      "--check-reregister",
      "--timeout", "240",
      "--approval-timeout", "120",
      "--release-key", releasePublicKey.toString("hex"),
    ], { AGW_ENROLLMENT_TOKEN: token });
    const registered = await agent.waitFor((e) => e.event === "registered", "registration", 60_000);
    expect(registered.state, agent.tail()).toBe("AGENT_STATE_PENDING_APPROVAL");
    expect(registered.verification_code).toMatch(/^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/);
    expect(registered.local_verification_code, "the agent derives the same code from its key").toBe(registered.verification_code);
    agentId = String(registered.agent_id);
    const identity = agent.event("identity");

    // The operator compares the code the agent printed with the one the gateway shows.
    const { agent: shown } = await admin(AgentService).getAgent({ id: agentId });
    expect(shown?.state).toBe(AgentState.PENDING_APPROVAL);
    expect(shown?.verificationCode, "code printed by the agent = code shown by the gateway").toBe(registered.verification_code);
    expect(Buffer.from(shown?.identityPublicKey ?? []).toString("hex")).toBe(identity?.public_key);

    // While pending, handshakes answer FAILED_PRECONDITION "awaiting approval" and the agent backs off.
    const waiting = await agent.waitFor((e) => e.event === "awaiting_approval", "an awaiting-approval retry", 30_000);
    expect(String(waiting.message)).toContain("awaiting approval");
    await admin(AgentService).approveAgent({ id: agentId, expectedVerificationCode: String(registered.verification_code) });
    const session = await agent.waitFor((e) => e.event === "session", "a session after approval", 60_000);
    expect(session.token_prefix).toBe("agws_");
    const retries = agent.all("awaiting_approval").map((e) => Number(e.retry_in_s));
    expect(retries.length).toBeGreaterThan(0);
  }, 120_000);

  it.skipIf(missing.python)(`a 31-byte key answers INVALID_ARGUMENT naming the field, with a buf.validate.Violations detail (grpc-status-details-bin)${skipNote("python")}`, () => {
    const a = requireAgent();
    const invalid = a.event("validation_error");
    expect(invalid?.code, a.tail()).toBe("INVALID_ARGUMENT");
    expect(String(invalid?.message)).toContain("identity_public_key");
    expect(invalid?.violations).toContainEqual(expect.objectContaining({ field: "identity_public_key", rule_id: "bytes.len" }));
  });

  it.skipIf(missing.python)(`handshakes (ed25519 auth transcript) and uploads a heartbeat${skipNote("python")}`, async () => {
    const a = requireAgent();
    const heartbeat = await a.waitFor((e) => e.event === "heartbeat", "the first heartbeat", 30_000);
    expect(heartbeat.status, a.tail()).toBe("OK");
    expect(Number(heartbeat.next_heartbeat_interval_s)).toBeGreaterThan(0);
    const shown = await agentEventually(agentId, (x) => x.liveness === Liveness.ONLINE);
    expect(shown?.state).toBe(AgentState.ACTIVE);
    expect(shown?.agentVersion).toBe("0.0.0-interop.python");
    expect(shown?.liveness, "ONLINE after a heartbeat (within the flush interval)").toBe(Liveness.ONLINE);
    expect(shown?.host?.os).toBe("linux");
    // What the agent claims about itself is kept apart from the token's (operator) labels.
    expect(shown?.host?.labels.lang).toBe("python");
    expect(shown?.labels.lang).toBeUndefined();
    expect(shown?.labels["interop-run"]).toBe(runLabel);
  }, 60_000);

  for (const [kind, rpc, count, list] of [
    ["telemetry", "UploadTelemetry", 3, "listAgentTelemetry"],
    ["events", "UploadEvents", 2, "listAgentEvents"],
  ] as const) {
    it.skipIf(missing.python)(`${rpc}: accepted once, counted as duplicates on retry${skipNote("python")}`, async (ctx) => {
      const a = requireAgent();
      const result = await a.waitFor((e) => e.event === kind, `the ${kind} upload`, 30_000);
      if (result.status === "UNIMPLEMENTED") {
        const why = `SKIPPED: the gateway answers ${rpc} with UNIMPLEMENTED (${String(result.message)}); the Python agent is ready for it`;
        console.warn(`[interop] ${why}`);
        ctx.skip(why);
      }
      expect(result, a.tail()).toMatchObject({ status: "OK", accepted: count, duplicates: 0, retry_accepted: 0, retry_duplicates: count });
      try {
        const stored = await admin(AgentService)[list]({ agentId });
        const items = "points" in stored ? stored.points : stored.events;
        expect(items.length).toBe(count);
      } catch (err) {
        if (!(err instanceof ConnectError && err.code === Code.Unimplemented)) throw err;
        console.warn(`[interop] AgentService.${list} answers UNIMPLEMENTED; stored ${kind} not read back`);
      }
    }, 60_000);
  }

  it.skipIf(missing.python)(`ControlStream: hello → welcome, a PeerRevoked command is received and acked, pings are answered${skipNote("python")}`, async (ctx) => {
    const a = requireAgent();
    const first = await a.waitFor((e) => e.event === "welcome" || (e.event === "control_stream" && e.status === "UNIMPLEMENTED") || e.event === "stream_error",
      "the ControlStream welcome", 30_000);
    if (first.event === "control_stream") {
      streamUnimplemented = true;
      const why = `SKIPPED: the gateway answers ControlStream with UNIMPLEMENTED (${String(first.message)}); the Python ControlStream client (hello, acks, pongs, GoAway) runs as soon as it lands. Until then the agent notices revocation through PERMISSION_DENIED on UploadHeartbeat.`;
      console.warn(`[interop] ${why}`);
      ctx.skip(why);
    }
    expect(first.event, a.tail()).toBe("welcome");
    streamOpened = true;
    expect(String(first.replica_id)).not.toBe("");
    expect(Number(first.heartbeat_interval_s)).toBeGreaterThan(0);
    expect(Number(first.max_stream_age_s)).toBeGreaterThan(0);

    // No admin RPC sends an arbitrary command, so revoke another agent of the tenant: every other
    // agent gets a PeerRevoked command.
    const peerToken = await mintToken({ description: "interop python peer" });
    const peer = run("python peer", PYTHON, [join(INTEROP, "python", "agent.py"), "--target", target, "--name", "py-interop-peer", "--register-only"],
      { AGW_ENROLLMENT_TOKEN: peerToken });
    expect(await peer.exited, peer.tail()).toBe(0);
    const peerRegistered = peer.event("registered");
    expect(peerRegistered?.state).toBe("AGENT_STATE_ACTIVE");
    const peerId = String(peerRegistered?.agent_id);
    await admin(AgentService).revokeAgent({ id: peerId, reason: "interop: peer revoked" });

    const command = await a.waitFor((e) => e.event === "command" && e.peer_agent_id === peerId, "the PeerRevoked command", 30_000);
    expect(command.kind).toBe("peer_revoked");
    expect(command.peer_public_key).toBe(peer.event("identity")?.public_key);
    expect(Number(command.sequence)).toBeGreaterThan(0);
    expect(String(command.command_id)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const ack = await a.waitFor((e) => e.event === "ack" && e.sequence === command.sequence, "the ack", 10_000);
    expect(ack.status).toBe("ACK_STATUS_OK");

    // Pings (every 2 s on an idle stream here) are answered with the same nonce, in order.
    await a.waitFor((e) => e.event === "pong", "a ping answered with a pong", 15_000);
    const pongs = a.all("pong").map((e) => e.nonce);
    const pings = a.all("ping").map((e) => e.nonce);
    expect(pongs.length).toBeGreaterThan(0);
    expect(pongs).toEqual(pings.slice(0, pongs.length));
    expect(pings.length - pongs.length, "at most the latest ping is still being answered").toBeLessThanOrEqual(1);
  }, 90_000);

  it.skipIf(missing.python)(`rollout: a signed release arrives as a RolloutDirective; the agent checks its pinned key and the signature, reports progress, and the wave completes on its heartbeat${skipNote("python")}`, async (ctx) => {
    const a = requireAgent();
    if (streamUnimplemented) ctx.skip("SKIPPED: ControlStream answers UNIMPLEMENTED, so no rollout directive can reach the agent");
    const artifact = Buffer.from(`agw-agent ${ROLLOUT_VERSION} (interop)`);
    const manifestBytes = toBinary(ReleaseManifestSchema, create(ReleaseManifestSchema, {
      version: ROLLOUT_VERSION,
      artifactUrl: `https://releases.example.com/agw-agent/${ROLLOUT_VERSION}/agw-agent.tar.gz`,
      artifactSha256: createHash("sha256").update(artifact).digest(),
      artifactSize: BigInt(artifact.length),
      notes: "interop test release",
      createdAt: timestampNow(),
      expiresAt: timestampFromMs(Date.now() + 3_600_000),
    }));
    const signature = cryptoSign(null, releaseManifestTranscript(manifestBytes), releaseKey.privateKey);
    await admin(ReleaseKeyService).registerReleaseKey({ name: "interop release key", publicKey: releasePublicKey });
    const { rollout } = await admin(RolloutService).createRollout({
      spec: {
        manifest: { manifest: manifestBytes, signature, releasePublicKey },
        targetSelector: { "interop-run": runLabel },
        waves: [{ name: "all", cumulativePercent: 100, verifyWindow: durationFromMs(60_000) }],
      },
    });
    if (!rollout) throw new Error("CreateRollout returned no rollout");
    expect(rollout.waves.flatMap((w) => w.memberIds), "only the Python agent carries the run label").toEqual([agentId]);
    await admin(RolloutService).startRollout({ id: rollout.id });

    const command = await a.waitFor((e) => e.event === "command" && e.kind === "rollout", "the rollout directive", 30_000);
    const ack = await a.waitFor((e) => e.event === "ack" && e.sequence === command.sequence, "the rollout ack", 15_000);
    expect(ack.status, a.tail()).toBe("ACK_STATUS_OK");
    const stages = a.all("rollout_progress").filter((e) => e.rollout_id === rollout.id).map((e) => e.stage);
    expect(stages).toEqual(["ROLLOUT_STAGE_RECEIVED", "ROLLOUT_STAGE_VERIFIED", "ROLLOUT_STAGE_APPLYING", "ROLLOUT_STAGE_SUCCEEDED"]);
    const applied = a.event("rollout_apply");
    expect(applied).toMatchObject({ rollout_id: rollout.id, version: ROLLOUT_VERSION, artifact_sha256: createHash("sha256").update(artifact).digest("hex") });

    // A member succeeds when a heartbeat after the wave started reports the target version.
    const deadline = Date.now() + 30_000;
    let current = rollout;
    while (Date.now() < deadline) {
      current = (await admin(RolloutService).getRollout({ id: rollout.id })).rollout ?? current;
      if (current.state === RolloutState.COMPLETED || current.waves[0]?.state === WaveState.SUCCEEDED) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(current.waves[0]?.state, JSON.stringify(current.waves[0], (_k, v) => (typeof v === "bigint" ? String(v) : v))).toBe(WaveState.SUCCEEDED);
    expect(current.waves[0]?.succeeded).toBe(1);
    expect(current.failures).toEqual([]);
    const shown = await agentEventually(agentId, (x) => x.agentVersion === ROLLOUT_VERSION);
    expect(shown.agentVersion).toBe(ROLLOUT_VERSION);
  }, 90_000);

  it.skipIf(missing.python)(`revocation: the agent is told (GoAway REVOKED), exits with code ${EXIT_REVOKED}, and its key is refused${skipNote("python")}`, async () => {
    const a = requireAgent();
    if (!streamOpened && !streamUnimplemented) {
      await a.waitFor((e) => e.event === "welcome" || e.event === "control_stream", "the ControlStream outcome", 30_000);
      streamUnimplemented = a.event("control_stream")?.status === "UNIMPLEMENTED";
    }
    const reason = "interop: revoked by the test";
    await admin(AgentService).revokeAgent({ id: agentId, reason });
    const code = await Promise.race([a.exited, new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 45_000))]);
    if (streamUnimplemented) {
      console.warn("[interop] ControlStream is UNIMPLEMENTED: expecting the fallback exit code 11 (revocation seen as PERMISSION_DENIED on UploadHeartbeat), not GoAway REVOKED");
      expect(code, a.tail()).toBe(EXIT_REVOKED_NO_STREAM);
    } else {
      expect(code, a.tail()).toBe(EXIT_REVOKED);
      const goAway = a.event("go_away");
      expect(goAway?.reason).toBe("GO_AWAY_REASON_REVOKED");
      expect(String(goAway?.message)).toContain(reason);
    }
    expect(a.event("post_revocation_handshake")?.code, a.tail()).toBe("PERMISSION_DENIED");
    expect(a.event("post_revocation_register")?.code, a.tail()).toBe("PERMISSION_DENIED");
    const { agent: shown } = await admin(AgentService).getAgent({ id: agentId });
    expect(shown?.state).toBe(AgentState.REVOKED);
    expect(shown?.revokeReason).toBe(reason);
  }, 90_000);
});

// ---- Python: test vectors ------------------------------------------------------------------

describe("Python implementation vs test/vectors", () => {
  it.skipIf(missing.python)(`check_vectors.py: transcripts, signatures, verification codes${skipNote("python")}`, async (ctx) => {
    const proc = run("check_vectors.py", PYTHON, [join(INTEROP, "python", "check_vectors.py")]);
    const code = await proc.exited;
    const skipped = proc.event("skipped");
    if (skipped) {
      const why = `SKIPPED: ${String(skipped.message)}`;
      console.warn(`[interop] ${why}`);
      ctx.skip(why);
    }
    expect(code, proc.tail()).toBe(0);
    const summary = proc.event("summary");
    expect(summary?.failures, proc.tail()).toBe(0);
    expect(Number(summary?.checks)).toBeGreaterThan(50);
    expect(summary?.missing, "every vector file is present").toEqual([]);
  }, 60_000);
});

// ---- Go ------------------------------------------------------------------------------------

describe("Go client (grpc-go 1.33, golang/protobuf 1.3.5, GOPATH mode)", () => {
  let work: string | undefined;
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it.skipIf(missing.go)(`generates code per proto file, builds, registers, handshakes and uploads a heartbeat${skipNote("go")}`, async () => {
    work = mkdtempSync(join(tmpdir(), "agw-interop-go-"));
    const build = run("go build", "bash", [join(INTEROP, "go", "build.sh"), work]);
    expect(await build.exited, build.tail()).toBe(0);
    const token = await mintToken({ description: "interop go" });
    const client = run("go client", join(work, "bin", "agw-go-client"), [
      "-target", target, "-name", "go-interop-1", "-vectors", join(REPO, "test", "vectors"),
    ], { AGW_ENROLLMENT_TOKEN: token });
    expect(await client.exited, client.tail()).toBe(0);
    const vectors = client.event("vectors");
    const haveVectors = existsSync(join(REPO, "test", "vectors", "register.json"));
    if (!haveVectors) console.warn("[interop] test/vectors not there yet: the Go client's vector check was skipped");
    expect(vectors?.status, client.tail()).toBe(haveVectors ? "OK" : "skipped");
    const registered = client.event("registered");
    expect(registered?.state).toBe("AGENT_STATE_ACTIVE");
    expect(registered?.verification_code).toBe(registered?.local_verification_code);
    expect(client.event("unauthenticated_heartbeat")?.code).toBe("Unauthenticated");
    expect(client.event("heartbeat")?.status).toBe("OK");
    const shown = await agentEventually(String(registered?.agent_id), (x) => x.liveness === Liveness.ONLINE);
    expect(shown.agentVersion).toBe("0.0.0-interop.go");
    expect(shown.liveness, "ONLINE after a heartbeat (within the flush interval)").toBe(Liveness.ONLINE);
  }, 240_000);
});

// ---- buf curl and curl ---------------------------------------------------------------------

describe("generic tools (buf curl with reflection, curl with Connect JSON)", () => {
  it.skipIf(missing.tools)(`tools.sh: health, reflection, tokens, agents, audit, validation and auth errors over connect, grpc and grpcweb${skipNote("tools")}`, async () => {
    const proc = run("tools.sh", "bash", [join(INTEROP, "tools.sh"), baseUrl], { AGW_ADMIN_KEY: adminKey });
    const code = await proc.exited;
    expect(code, proc.tail(120)).toBe(0);
    expect(proc.output.some((l) => /^# all \d+ checks passed$/.test(l)), proc.tail()).toBe(true);
  }, 120_000);
});
