/**
 * Handshake throughput: complete BeginAuthHandshake + CompleteAuthHandshake pairs per second,
 * p50/p99 latency per pair, and server CPU per pair (gateway process and the PostgreSQL
 * cluster), against a real gateway in its own process on real PostgreSQL, at several
 * concurrency levels. Baseline in the same run, same client, same connections, same
 * concurrency: grpc.health.v1.Health/Check on the same gateway (no database).
 *
 *   npx tsx bench/handshake.ts            # measure and write bench/RESULTS.md
 *   npx tsx bench/handshake.ts --profile  # also: one run under `node --cpu-prof`, top self time
 *   npx tsx bench/handshake.ts --profile-only
 *
 * Knobs (env): BENCH_HS_CONCURRENCY (default "1,16,64"), BENCH_HS_SECONDS per mode (5),
 * BENCH_HS_MAX_PAIRS per mode (30000), BENCH_HS_AGENTS pre-enrolled agents (128),
 * BENCH_CONNECTIONS HTTP/2 connections (4), BENCH_MAX_LOAD wait for load below this (1.5).
 */
import { type ClosedLoopResult, runClosedLoop } from "./lib/closed-loop.js";
import { createPrivateKey, type KeyObject, sign as nodeSign } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { createConnectTransport } from "@connectrpc/connect-node";
import { gatewayClient, register } from "../agent/lib/direct.js";
import { EnrollmentTokenService } from "../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import {
  BeginAuthHandshakeRequestSchema,
  BeginAuthHandshakeResponseSchema,
  CompleteAuthHandshakeRequestSchema,
  CompleteAuthHandshakeResponseSchema,
} from "../gen/agentgateway/v1/gateway_pb.js";
import { HealthCheckRequestSchema, HealthCheckResponseSchema } from "../gen/grpc/health/v1/health_pb.js";
import { generateKeyPair, sign as nobleSign } from "../client/protocol/ed25519.js";
import { authTranscript } from "../client/protocol/transcript.js";
import { adminClient } from "../test/support/admin.js";
import { type BenchGateway, spawnGateway } from "./lib/child.js";
import { monotonicMicros, summarizeProfile } from "./lib/cpu-profile.js";
import { SessionPool, unary } from "./lib/lean-client.js";
import { ActivitySampler, type BenchDatabase, type BenchPostgres, startPostgres } from "./lib/postgres.js";
import { loadAverages, waitForQuietMachine } from "./lib/proc.js";
import { commandLine, machineFacts, writeSection } from "./lib/results.js";
import { fmt, int, table } from "./lib/stats.js";

const LEVELS = (process.env.BENCH_HS_CONCURRENCY ?? "1,16,64")
  .split(",")
  .map(Number)
  .filter((n) => n > 0);
const SECONDS = envNumber("BENCH_HS_SECONDS", 5);
const MAX_PAIRS = envNumber("BENCH_HS_MAX_PAIRS", 30_000);
const MAX_CHECKS = MAX_PAIRS * 10;
const AGENTS = Math.max(envNumber("BENCH_HS_AGENTS", 128), ...LEVELS);
const CONNECTIONS = envNumber("BENCH_CONNECTIONS", 4);
const WARMUP_SECONDS = envNumber("BENCH_HS_WARMUP", 5);
const MAX_LOAD = envNumber("BENCH_MAX_LOAD", 1.5);
const QUIET_TIMEOUT_MS = envNumber("BENCH_QUIET_TIMEOUT", 300) * 1000;
const PROFILE_ONLY = process.argv.includes("--profile-only");
const PROFILE = PROFILE_ONLY || process.argv.includes("--profile");
const UNLIMITED = "1000000/s:1000000";
/**
 * Rate limits lifted; the first-request and idle timeouts raised so the client's connections
 * survive a long wait for a quiet machine before and between modes (the defaults, 10 s and 2 min,
 * closed them: "The session has been destroyed").
 */
const GATEWAY_ENV = { AGW_HANDSHAKE_RATE: UNLIMITED, AGW_HANDSHAKE_SOURCE_RATE: UNLIMITED, AGW_REGISTER_RATE: UNLIMITED, AGW_IDLE_TIMEOUT: "1h", AGW_FIRST_REQUEST_TIMEOUT: "1h" };
/** Also measure the gateway with bench/lib/pg-named-statements-hook.ts preloaded (BENCH_HS_EXPERIMENT=0 to skip). */
const EXPERIMENT = process.env.BENCH_HS_EXPERIMENT !== "0";
const NAMED_STATEMENTS_HOOK = "bench/lib/pg-named-statements-hook.ts";
const EXPERIMENT_MODE = "pair, EXPERIMENT: every other pg statement named too (bench preload)";

const BEGIN = "/agentgateway.v1.AgentGatewayService/BeginAuthHandshake";
const COMPLETE = "/agentgateway.v1.AgentGatewayService/CompleteAuthHandshake";
const HEALTH = "/grpc.health.v1.Health/Check";

/** A pre-enrolled agent, with its key ready for node:crypto signing. */
interface PoolAgent {
  agentId: string;
  publicKey: Uint8Array;
  signingKey: KeyObject;
}

/** One closed-loop run of one mode; the measured server is the gateway. */
type ModeResult = ClosedLoopResult & { mode: string; gatewayCpuUs: number };

// PKCS#8 DER header of an ed25519 private key (RFC 8410): the 32-byte seed follows.
const PKCS8_ED25519 = Buffer.from("302e020100300506032b657004220420", "hex");

async function main(): Promise<void> {
  const log = (line: string) => console.error(`[handshake] ${line}`);
  const postgres = await startPostgres();
  try {
    log(`PostgreSQL ${postgres.version}`);
    const parts: string[] = [];
    if (!PROFILE_ONLY) parts.push(await measuredRun(postgres, log));
    if (PROFILE) parts.push(await profileRun(postgres, log));
    const report = parts.join("\n\n");
    console.log(report);
    if (!process.env.BENCH_NO_WRITE) {
      writeSection("## Handshake throughput", INTRO, report, 6);
      log("wrote bench/RESULTS.md");
    }
  } finally {
    await postgres.stop();
  }
}

/** A gateway under test with its own database, enrolled agents and client connections. */
interface Target {
  gateway: BenchGateway;
  database: BenchDatabase;
  agents: PoolAgent[];
  pool: SessionPool;
}

async function startTarget(postgres: BenchPostgres, name: string, preload: string[], log: (line: string) => void): Promise<Target> {
  const database = await postgres.createDatabase(name);
  try {
    const gateway = await spawnGateway(
      database.url,
      GATEWAY_ENV,
      false,
      preload,
    );
    log(`gateway pid ${gateway.pid} at ${gateway.url}${preload.length ? ` (preload ${preload.join(", ")})` : ""}`);
    const agents = await enrollPool(gateway, AGENTS, log);
    const pool = await SessionPool.open(gateway.url, CONNECTIONS);
    return { gateway, database, agents, pool };
  } catch (err) {
    await database.drop().catch(() => {});
    throw err;
  }
}

async function stopTarget(t: Target | undefined): Promise<void> {
  if (!t) return;
  t.pool.close();
  await t.gateway.stop();
  await t.database.drop().catch(() => {});
}

/**
 * The measured run: every concurrency level, Health/Check then handshake pairs on the gateway
 * as it is, and (unless disabled) handshake pairs on a second, experimental gateway process
 * with its own database. Both stay up (idle when not measured) and are measured alternately
 * (order flipped per level), so warm-up and drift affect them alike.
 */
async function measuredRun(postgres: BenchPostgres, log: (line: string) => void): Promise<string> {
  let base: Target | undefined;
  let experiment: Target | undefined;
  try {
    base = await startTarget(postgres, "agw_bench_hs", [], log);
    if (EXPERIMENT) experiment = await startTarget(postgres, "agw_bench_hs_exp", [NAMED_STATEMENTS_HOOK], log);
    await waitForQuietMachine(MAX_LOAD, QUIET_TIMEOUT_MS, log);
    const startLoad = loadAverages();
    // Warm-up (not recorded): JIT, connection pools, prepared code paths.
    for (const t of [base, experiment]) {
      if (!t) continue;
      await runMode("warm-up", 16, WARMUP_SECONDS, 1_000_000, t.gateway, postgres, healthOp(t.pool));
      await runMode("warm-up", 16, WARMUP_SECONDS, 1_000_000, t.gateway, postgres, handshakeOp(t.pool, t.agents, 16));
    }
    const results: ModeResult[] = [];
    let activity: Awaited<ReturnType<ActivitySampler["stop"]>> | undefined;
    for (const [level, c] of LEVELS.entries()) {
      await waitForQuietMachine(MAX_LOAD, QUIET_TIMEOUT_MS, log);
      results.push(await runMode("Health/Check (bare unary, no DB)", c, SECONDS, MAX_CHECKS, base.gateway, postgres, healthOp(base.pool)));
      const measureBase = async (b: Target) => {
        const sampler = c === Math.max(...LEVELS) ? new ActivitySampler(b.database.url, b.database.name) : undefined;
        await sampler?.start();
        results.push(await runMode("Begin + Complete handshake pair", c, SECONDS, MAX_PAIRS, b.gateway, postgres, handshakeOp(b.pool, b.agents, c)));
        if (sampler) activity = await sampler.stop();
      };
      const measureExperiment = async (e: Target) => {
        await waitForQuietMachine(MAX_LOAD, QUIET_TIMEOUT_MS, log);
        results.push(await runMode(EXPERIMENT_MODE, c, SECONDS, MAX_PAIRS, e.gateway, postgres, handshakeOp(e.pool, e.agents, c)));
      };
      if (experiment && level % 2 === 1) {
        await measureExperiment(experiment);
        await measureBase(base);
      } else {
        await measureBase(base);
        if (experiment) await measureExperiment(experiment);
      }
      log(
        `c=${c}: ${results
          .filter((r) => r.concurrency === c)
          .map((r) => `${r.mode.split(" ")[0]} ${int(r.ops / r.seconds)}/s`)
          .join(", ")}`,
      );
    }
    return renderRun(results, activity, postgres, startLoad, base.pool.remoteMaxConcurrentStreams);
  } finally {
    await stopTarget(experiment);
    await stopTarget(base);
  }
}

const INTRO = `Full BeginAuthHandshake + CompleteAuthHandshake pairs per second against the real gateway
(separate process, 127.0.0.1, PostgreSQL via \`pg\`), with a pool of agents enrolled through the real
Register API, each worker cycling over its own agents (no two pairs for one agent in flight).
Rate limits are lifted for the run (\`AGW_HANDSHAKE_RATE\`, \`AGW_HANDSHAKE_SOURCE_RATE\` and
\`AGW_REGISTER_RATE\` = \`1000000/s:1000000\`) so they do not interfere. Baseline, same run, same
client, same connections and concurrency: \`grpc.health.v1.Health/Check\` on the same gateway (no
database). \`AGW_FIRST_REQUEST_TIMEOUT\` and \`AGW_IDLE_TIMEOUT\` = \`1h\` keep the client's connections open
through waits for a quiet machine. Client: lean load generator (raw \`node:http2\`, hand-framed Connect unary requests,
binary protobuf, \`application/proto\`) over several HTTP/2 connections; the client signs with
\`node:crypto\` (signatures identical to \`@noble/ed25519\`'s) so its CPU stays small. CPU per op is
\`utime+stime\` from \`/proc/<pid>/stat\` (10 ms ticks) over the measured interval: the gateway process,
the whole PostgreSQL cluster (postmaster and backends, embedded server only), and the load generator;
The gateway runs its two handshake statements as named prepared statements itself
(\`server/db/named-statements.ts\`, since issue 16). Rows marked EXPERIMENT run a second gateway
process (own database, own agents, same PostgreSQL server, measured alternately with the first) with
\`bench/lib/pg-named-statements-hook.ts\` preloaded: every other parameterized \`pg\` query becomes a
named prepared statement too (parsed and planned once per connection).
"other procs' CPU" is the rest of the machine's busy CPU (/proc/stat) in that interval, as a share of
all cores: other engineers' work on the shared machine. A mode waits for a quiet machine first.`;

/** One operation of a mode, run by worker `w` as its `i`-th operation. */
type Op = (w: number, i: number) => Promise<void>;

function healthOp(pool: SessionPool): Op {
  const body = create(HealthCheckRequestSchema, { service: "" });
  return async (w) => {
    await unary(pool.get(w), HEALTH, HealthCheckRequestSchema, body, HealthCheckResponseSchema);
  };
}

/** A handshake pair; worker w of c uses agents w, w + c, w + 2c, … of the pool in turn. */
function handshakeOp(pool: SessionPool, agents: PoolAgent[], c: number): Op {
  const perWorker = Math.max(1, Math.floor(agents.length / c));
  return async (w, i) => {
    const agent = agents[(w + (i % perWorker) * c) % agents.length];
    if (!agent) throw new Error("empty agent pool");
    const session = pool.get(w);
    const begin = await unary(
      session,
      BEGIN,
      BeginAuthHandshakeRequestSchema,
      create(BeginAuthHandshakeRequestSchema, { agentId: agent.agentId, identityPublicKey: agent.publicKey }),
      BeginAuthHandshakeResponseSchema,
    );
    const transcript = authTranscript({ challengeId: begin.challengeId, nonce: begin.nonce, agentId: agent.agentId, publicKey: agent.publicKey });
    const signature = new Uint8Array(nodeSign(null, transcript, agent.signingKey));
    const done = await unary(
      session,
      COMPLETE,
      CompleteAuthHandshakeRequestSchema,
      create(CompleteAuthHandshakeRequestSchema, { challengeId: begin.challengeId, agentId: agent.agentId, signature }),
      CompleteAuthHandshakeResponseSchema,
    );
    if (!done.sessionToken.startsWith("agws_")) throw new Error("no session token in the response");
  };
}

/** Runs `op` with `c` workers until `seconds` pass or `maxOps` complete; measures CPU on all sides. */
async function runMode(mode: string, c: number, seconds: number, maxOps: number, gateway: BenchGateway, postgres: BenchPostgres, op: Op): Promise<ModeResult> {
  const r = await runClosedLoop({ concurrency: c, seconds, maxOps, server: gateway, postgres, op });
  if (r.errors > 0) console.error(`[handshake] ${mode} c=${c}: ${r.errors} errors, first: ${r.firstError}`);
  return { ...r, mode, gatewayCpuUs: r.serverCpuUs };
}

/** Mints one token and registers `n` agents through the real API (8 at a time). */
async function enrollPool(gateway: BenchGateway, n: number, log: (line: string) => void): Promise<PoolAgent[]> {
  const t0 = performance.now();
  const transport = createConnectTransport({ baseUrl: gateway.url, httpVersion: "2" });
  const admin = adminClient(EnrollmentTokenService, gateway.url, gateway.adminKey);
  const { secret } = await admin.createEnrollmentToken({ maxUses: n });
  const client = gatewayClient(transport);
  const agents: PoolAgent[] = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const identity = generateKeyPair();
      const reg = await register(client, { token: secret, identity, name: `bench-hs-${i}` });
      const signingKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, identity.privateKey]), format: "der", type: "pkcs8" });
      agents.push({ agentId: reg.agentId, publicKey: identity.publicKey, signingKey });
      if (i === 0) {
        // node:crypto must produce noble's exact signature, or the comparison would be unfair.
        const probe = new Uint8Array([1, 2, 3]);
        if (Buffer.compare(nodeSign(null, probe, signingKey), Buffer.from(nobleSign(identity.privateKey, probe))) !== 0) {
          throw new Error("node:crypto and @noble/ed25519 signatures differ");
        }
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, () => worker()));
  log(`enrolled ${agents.length} agents through Register in ${fmt((performance.now() - t0) / 1000, 1)} s`);
  return agents.sort((a, b) => a.agentId.localeCompare(b.agentId));
}

/** A separate gateway under `node --cpu-prof`: handshakes at the top concurrency, self time by function. */
async function profileRun(postgres: BenchPostgres, log: (line: string) => void): Promise<string> {
  const c = Math.max(...LEVELS);
  const database = await postgres.createDatabase("agw_bench_hs_prof");
  let gateway: BenchGateway | undefined;
  let pool: SessionPool | undefined;
  try {
    gateway = await spawnGateway(database.url, GATEWAY_ENV, true);
    const agents = await enrollPool(gateway, AGENTS, log);
    pool = await SessionPool.open(gateway.url, CONNECTIONS);
    await runMode("warm-up", 16, WARMUP_SECONDS, 1_000_000, gateway, postgres, handshakeOp(pool, agents, 16));
    const fromUs = monotonicMicros();
    const result = await runMode("profiled pairs", c, SECONDS, MAX_PAIRS, gateway, postgres, handshakeOp(pool, agents, c));
    const toUs = monotonicMicros();
    const healthFrom = monotonicMicros();
    const health = await runMode("profiled checks", c, SECONDS, MAX_CHECKS, gateway, postgres, healthOp(pool));
    const healthTo = monotonicMicros();
    pool.close();
    pool = undefined;
    const path = await gateway.stop();
    gateway = undefined;
    if (!path) return "### Profile\n\n(no CPU profile was written)";
    const hs = summarizeProfile(path, { fromUs, toUs }, 25);
    const hc = summarizeProfile(path, { fromUs: healthFrom, toUs: healthTo }, 12);
    const rows = (s: typeof hs, ops: number) =>
      s.functions.map((f) => [f.name.replace(/\|/g, "\\|"), f.where || "–", fmt(f.ms, 0), `${fmt(f.share * 100, 1)} %`, fmt((f.ms * 1000) / ops, 1)]);
    const areas = (s: typeof hs, ops: number) => s.areas.map((a) => [a.name, fmt(a.ms, 0), `${fmt(a.share * 100, 1)} %`, fmt((a.ms * 1000) / ops, 1)]);
    return [
      `### Profile ${new Date().toISOString()} — gateway under \`node --cpu-prof\`, c=${c}`,
      "",
      `Profiled pairs: ${int(result.ops)} in ${fmt(result.seconds, 2)} s (${int(result.ops / result.seconds)}/s under the profiler); busy CPU in the window ${fmt(hs.totalMs, 0)} ms (${fmt((hs.totalMs * 1000) / result.ops, 0)} µs/pair), idle ${fmt(hs.idleMs, 0)} ms${hs.windowed ? "" : " (window did not line up: whole profile)"}. Self time by area:`,
      "",
      table(["area", "self ms", "share", "µs / pair"], areas(hs, result.ops)),
      "",
      "Top functions by self time (handshake window):",
      "",
      table(["function", "where", "self ms", "share", "µs / pair"], rows(hs, result.ops), (i) => i > 1),
      "",
      `Health/Check window for comparison: ${int(health.ops)} checks, busy ${fmt(hc.totalMs, 0)} ms = ${fmt((hc.totalMs * 1000) / health.ops, 0)} µs/check. By area:`,
      "",
      table(["area", "self ms", "share", "µs / check"], areas(hc, health.ops)),
    ].join("\n");
  } finally {
    pool?.close();
    await gateway?.stop();
    await database.drop().catch(() => {});
  }
}

function renderRun(
  results: ModeResult[],
  activity: Awaited<ReturnType<ActivitySampler["stop"]>> | undefined,
  postgres: BenchPostgres,
  startLoad: string,
  remoteMaxStreams: number | undefined,
): string {
  const rank = (m: string) => (m.startsWith("Health") ? 0 : m.startsWith("Begin") ? 1 : 2);
  const ordered = [...results].sort((a, b) => a.concurrency - b.concurrency || rank(a.mode) - rank(b.mode));
  const rows = ordered.map((r) => {
    const base = results.find((b) => b.concurrency === r.concurrency && b.mode.startsWith("Health"));
    const rate = r.ops / r.seconds;
    const ratio = base && base !== r ? fmt(rate / (base.ops / base.seconds), 3) : "1";
    return [
      String(r.concurrency),
      r.mode,
      int(r.ops),
      r.errors ? `${r.errors} (${r.firstError ?? ""})` : "0",
      fmt(r.seconds, 2),
      `**${int(rate)}**`,
      ratio,
      fmt(r.latency.p50, 2),
      fmt(r.latency.p99, 2),
      int(r.gatewayCpuUs),
      int(r.postgresCpuUs),
      int(r.clientCpuUs),
      `${fmt(r.otherShare * 100, 0)} %`,
      fmt(r.load, 2),
    ];
  });
  const parts = [
    `### Run ${new Date().toISOString()}`,
    "",
    machineFacts({
      PostgreSQL: `${postgres.version}, ${postgres.description}`,
      "load averages when measuring started": startLoad,
      client: `lean raw node:http2, ${CONNECTIONS} HTTP/2 connections (server SETTINGS_MAX_CONCURRENT_STREAMS ${remoteMaxStreams ?? "?"}), ${AGENTS} pre-enrolled agents, ${SECONDS} s or ${int(MAX_PAIRS)} pairs per mode after a ${WARMUP_SECONDS} s warm-up of each kind`,
      command: `\`${commandLine()}\``,
    }),
    "",
    table(
      [
        "conc.",
        "mode",
        "ops",
        "errors",
        "s",
        "ops/s",
        "× Health",
        "p50 ms",
        "p99 ms",
        "gateway CPU µs/op",
        "PostgreSQL CPU µs/op",
        "client CPU µs/op",
        "other procs' CPU",
        "load 1m",
      ],
      rows,
      (i) => i !== 1 && i !== 3,
    ),
  ];
  if (activity && activity.rows.length > 0) {
    parts.push(
      "",
      `PostgreSQL backends of the gateway's database during the c=${Math.max(...LEVELS)} handshake run (pg_stat_activity sampled every 50 ms, ${activity.samples} samples; share of non-idle backend observations):`,
      "",
      table(
        ["state · wait event · query", "share"],
        activity.rows.slice(0, 8).map((r) => [r.what.replace(/\|/g, "\\|"), `${fmt(r.share * 100, 1)} %`]),
      ),
    );
  }
  return parts.join("\n");
}

function envNumber(name: string, fallback: number): number {
  const value = Number(process.env[name]);
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
