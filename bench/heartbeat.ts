/**
 * UploadHeartbeat throughput: calls per second against the real gateway (separate process,
 * real PostgreSQL, real sessions from the real Register + handshake), beside a bare
 * `node:http2` server that echoes the request body (bench/lib/bare-echo-server.ts, also its own
 * process), driven by the same lean load generator (bench/lib/lean-client.ts) with the same
 * pre-serialized request, connections and concurrency, in the same run, for gRPC and Connect
 * framing. The ratio gateway ÷ bare is issue 16's figure (target ≥ 0.25).
 *
 *   npx tsx bench/heartbeat.ts              # measure and write bench/RESULTS.md
 *   npx tsx bench/heartbeat.ts --profile    # also: one gateway run under `node --cpu-prof`, top self time
 *   npx tsx bench/heartbeat.ts --profile-only
 *
 * Knobs (env): BENCH_HB_CONCURRENCY ("1,16,64"), BENCH_HB_PROTOCOLS ("grpc,connect"),
 * BENCH_HB_SECONDS per mode (4), BENCH_HB_MAX_CALLS per mode (200000), BENCH_HB_AGENTS
 * (64 enrolled agents, one session each), BENCH_CONNECTIONS (4 HTTP/2 connections),
 * BENCH_MAX_LOAD / BENCH_QUIET_TIMEOUT (wait up to that many seconds for the 1-minute load to
 * fall below it before each level; 1.5 / 300), BENCH_NO_WRITE=1 to only print.
 */
import { type ClosedLoopResult, runClosedLoop } from "./lib/closed-loop.js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { createConnectTransport } from "@connectrpc/connect-node";
import { gatewayClient, handshake, register } from "../agent/lib/direct.js";
import { generateKeyPair } from "../client/protocol/ed25519.js";
import { EnrollmentTokenService } from "../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { AgentStatus, UploadHeartbeatRequestSchema, UploadHeartbeatResponseSchema } from "../gen/agentgateway/v1/ingest_pb.js";
import { adminClient } from "../test/support/admin.js";
import { type BenchGateway, type MeasuredProcess, spawnGateway, spawnMeasured } from "./lib/child.js";
import { monotonicMicros, summarizeProfile } from "./lib/cpu-profile.js";
import { grpcUnaryBytes, SessionPool, unaryBytes } from "./lib/lean-client.js";
import { type BenchDatabase, type BenchPostgres, startPostgres } from "./lib/postgres.js";
import { loadAverages, waitForQuietMachine } from "./lib/proc.js";
import { commandLine, machineFacts, writeSection } from "./lib/results.js";
import { fmt, int, table } from "./lib/stats.js";

const LEVELS = list("BENCH_HB_CONCURRENCY", "1,16,64").map(Number).filter((n) => n > 0);
const PROTOCOLS = list("BENCH_HB_PROTOCOLS", "grpc,connect").filter((p): p is Protocol => p === "grpc" || p === "connect");
const SECONDS = envNumber("BENCH_HB_SECONDS", 4);
const MAX_CALLS = envNumber("BENCH_HB_MAX_CALLS", 200_000);
const AGENTS = envNumber("BENCH_HB_AGENTS", 64);
const CONNECTIONS = envNumber("BENCH_CONNECTIONS", 4);
const WARMUP_SECONDS = envNumber("BENCH_HB_WARMUP", 3);
const MAX_LOAD = envNumber("BENCH_MAX_LOAD", 1.5);
const QUIET_TIMEOUT_MS = envNumber("BENCH_QUIET_TIMEOUT", 300) * 1000;
const PROFILE_ONLY = process.argv.includes("--profile-only");
const PROFILE = PROFILE_ONLY || process.argv.includes("--profile");
const UNLIMITED = "1000000/s:1000000";
const PATH = "/agentgateway.v1.AgentGatewayService/UploadHeartbeat";

type Protocol = "grpc" | "connect";

/** What is measured: the bare echo (the baseline of the ratio), bare connect-node with a trivial handler, the gateway. */
type Target = "bare" | "connect-node" | "gateway";
const TARGET_NAMES: Record<Target, string> = { bare: "bare node:http2 echo", "connect-node": "bare connect-node, trivial handler", gateway: "gateway UploadHeartbeat" };

/** One call; worker `w` makes its `i`-th call. */
type Call = (w: number, i: number) => Promise<Uint8Array>;

/** One closed-loop run against one server and protocol. */
type ModeResult = ClosedLoopResult & { target: Target; protocol: Protocol; calls: number };

const INTRO = `\`UploadHeartbeat\` calls per second on the real gateway (own process, 127.0.0.1, real PostgreSQL,
agents enrolled through Register and a real handshake: one session each, every call authenticated
by its bearer token through the identity interceptor and the session resolver, validated and
handed to the heartbeat coalescer) against a bare \`node:http2\` server in its own process that
echoes each request body back (gRPC: headers, the framed body, \`grpc-status: 0\` trailer; Connect:
\`application/proto\`), and a second baseline, bare connect-node on node:http2 with a handler that
only answers (bench/lib/bare-connect-heartbeat-server.ts: no interceptors, auth or validation),
which splits the framework's cost per call from the gateway's own. Same lean load generator (raw \`node:http2\`, one pre-serialized
UploadHeartbeatRequest, ${CONNECTIONS} HTTP/2 connections), same concurrency, same run; the
targets take turns per level, in alternating order. CPU per call is \`utime+stime\` from \`/proc/<pid>/stat\`
over the measured interval (server process, the PostgreSQL cluster, the load generator);
"other procs" is the rest of the machine's busy CPU as a share of all cores (other work on the
shared machine). Issue 16's figure is the gateway's calls/s ÷ bare, target ≥ 0.25.`;

async function main(): Promise<void> {
  const log = (line: string) => console.error(`[heartbeat] ${line}`);
  const postgres = await startPostgres();
  let database: BenchDatabase | undefined;
  let bare: MeasuredProcess | undefined;
  let framework: MeasuredProcess | undefined;
  let gateway: BenchGateway | undefined;
  const pools: SessionPool[] = [];
  try {
    log(`PostgreSQL ${postgres.version}`);
    if (PROFILE_ONLY) {
      const report = await profileRun(postgres, log);
      console.log(report);
      if (!process.env.BENCH_NO_WRITE) writeSection("## UploadHeartbeat vs bare HTTP/2 echo", INTRO, report, 4);
      return;
    }
    database = await postgres.createDatabase("agw_bench_hb");
    bare = await spawnMeasured({ script: ["bench/lib/bare-echo-server.ts"], ready: /BARE listening on (http:\/\/[\d.]+:\d+)/ });
    framework = await spawnMeasured({ script: ["bench/lib/bare-connect-heartbeat-server.ts"], ready: /BARE listening on (http:\/\/[\d.]+:\d+)/ });
    gateway = await spawnGateway(database.url, { AGW_REGISTER_RATE: UNLIMITED, AGW_HANDSHAKE_RATE: UNLIMITED, AGW_HANDSHAKE_SOURCE_RATE: UNLIMITED }, false);
    log(`bare pid ${bare.pid} at ${bare.url}; gateway pid ${gateway.pid} at ${gateway.url}`);
    const tokens = await enroll(gateway, AGENTS, log);
    const barePool = await SessionPool.open(bare.url, CONNECTIONS);
    const frameworkPool = await SessionPool.open(framework.url, CONNECTIONS);
    const gatewayPool = await SessionPool.open(gateway.url, CONNECTIONS);
    pools.push(barePool, frameworkPool, gatewayPool);
    const servers: Record<Target, MeasuredProcess> = { bare, "connect-node": framework, gateway };
    const body = heartbeatBytes();
    const calls = (target: Target, protocol: Protocol): Call => {
      const pool = target === "bare" ? barePool : target === "gateway" ? gatewayPool : frameworkPool;
      const send = protocol === "grpc" ? grpcUnaryBytes : unaryBytes;
      // The bare server ignores the header; it is sent anyway so both carry the same bytes.
      return (w, i) => send(pool.get(w), PATH, body, { authorization: `Bearer ${tokens[(w + i) % tokens.length]}` });
    };
    // The gateway's answer must be a real UploadHeartbeatResponse, not an error mapped to 200.
    const probe = fromBinary(UploadHeartbeatResponseSchema, await calls("gateway", "grpc")(0, 0));
    if (!probe.serverTime || !probe.nextHeartbeatInterval) throw new Error("UploadHeartbeat answered without server_time / next_heartbeat_interval");

    for (const protocol of PROTOCOLS) {
      for (const target of ["bare", "connect-node", "gateway"] as const) await runMode(target, protocol, 16, WARMUP_SECONDS, MAX_CALLS, servers[target], postgres, calls(target, protocol));
    }
    const startLoad = loadAverages();
    const results: ModeResult[] = [];
    let flip = false;
    for (const protocol of PROTOCOLS) {
      for (const c of LEVELS) {
        await waitForQuietMachine(MAX_LOAD, QUIET_TIMEOUT_MS, log);
        const order: Target[] = flip ? ["gateway", "connect-node", "bare"] : ["bare", "connect-node", "gateway"];
        flip = !flip;
        for (const target of order) results.push(await runMode(target, protocol, c, SECONDS, MAX_CALLS, servers[target], postgres, calls(target, protocol)));
        const pair = results.filter((r) => r.protocol === protocol && r.concurrency === c);
        log(`${protocol} c=${c}: ${pair.map((r) => `${r.target} ${int(r.calls / r.seconds)}/s`).join(", ")}`);
      }
    }
    let report = renderRun(results, postgres, startLoad);
    if (PROFILE) report += `\n\n${await profileRun(postgres, log)}`;
    console.log(report);
    if (!process.env.BENCH_NO_WRITE) {
      writeSection("## UploadHeartbeat vs bare HTTP/2 echo", INTRO, report, 4);
      log("wrote bench/RESULTS.md");
    }
  } finally {
    for (const p of pools) p.close();
    await gateway?.stop();
    await framework?.stop();
    await bare?.stop();
    await database?.drop().catch(() => {});
    await postgres.stop();
  }
}

/** A gateway under `--cpu-prof`, own database and agents: gRPC at the highest level, then the top self time. */
async function profileRun(postgres: BenchPostgres, log: (line: string) => void): Promise<string> {
  const database = await postgres.createDatabase("agw_bench_hb_prof");
  const gateway = await spawnGateway(database.url, { AGW_REGISTER_RATE: UNLIMITED, AGW_HANDSHAKE_RATE: UNLIMITED, AGW_HANDSHAKE_SOURCE_RATE: UNLIMITED }, true);
  let pool: SessionPool | undefined;
  let profile: string | undefined;
  const c = Math.max(...LEVELS);
  let result: ModeResult;
  let window: { fromUs: number; toUs: number } | undefined;
  try {
    const tokens = await enroll(gateway, AGENTS, log);
    pool = await SessionPool.open(gateway.url, CONNECTIONS);
    const p = pool;
    const body = heartbeatBytes();
    const call: Call = (w, i) => grpcUnaryBytes(p.get(w), PATH, body, { authorization: `Bearer ${tokens[(w + i) % tokens.length]}` });
    await runMode("gateway", "grpc", c, WARMUP_SECONDS, MAX_CALLS, gateway, postgres, call);
    const fromUs = monotonicMicros();
    result = await runMode("gateway", "grpc", c, SECONDS, MAX_CALLS, gateway, postgres, call);
    window = { fromUs, toUs: monotonicMicros() };
  } finally {
    pool?.close();
    profile = await gateway.stop();
    await database.drop().catch(() => {});
  }
  if (!profile) return "### Profile\n\nno CPU profile was written";
  const s = summarizeProfile(profile, window, 25);
  log(`profile ${profile} window ${window?.fromUs} ${window?.toUs}`);
  if (!window) throw new Error("the profiled run did not finish");
  return [
    `### Profile: gateway under \`--cpu-prof\`, gRPC, concurrency ${c} (${int(result.calls / result.seconds)} calls/s while profiled; ${s.windowed ? "samples of the measured interval only" : "whole process life"}: ${int(s.totalMs)} ms CPU, ${int((s.totalMs * 1000) / Math.max(1, result.calls))} µs per call)`,
    "",
    table(["area (self time)", "ms", "share"], s.areas.slice(0, 15).map((a) => [a.name, int(a.ms), `${fmt(a.share * 100)} %`])),
    "",
    table(["function (self time)", "where", "ms", "share"], s.functions.slice(0, 25).map((f) => [f.name, f.where, int(f.ms), `${fmt(f.share * 100)} %`]), (i) => i > 1),
  ].join("\n");
}

/** A realistic heartbeat: status, version, uptime and host facts, serialized once. */
function heartbeatBytes(): Uint8Array {
  return toBinary(
    UploadHeartbeatRequestSchema,
    create(UploadHeartbeatRequestSchema, {
      status: AgentStatus.HEALTHY,
      agentVersion: "1.4.2",
      uptime: durationFromMs(3_600_000),
      host: { hostname: "edge-probe-0042", os: "linux", arch: "amd64", agentVersion: "1.4.2" },
    }),
  );
}

/** Runs `call` with `c` workers until `seconds` pass or `maxCalls` complete; measures CPU on all sides. */
async function runMode(
  target: Target,
  protocol: Protocol,
  c: number,
  seconds: number,
  maxCalls: number,
  server: MeasuredProcess,
  postgres: BenchPostgres,
  call: Call,
): Promise<ModeResult> {
  const r = await runClosedLoop({ concurrency: c, seconds, maxOps: maxCalls, server, postgres, op: call });
  if (r.errors > 0) console.error(`[heartbeat] ${target} ${protocol} c=${c}: ${r.errors} errors, first: ${r.firstError}`);
  return { ...r, target, protocol, calls: r.ops };
}

function renderRun(results: ModeResult[], postgres: BenchPostgres, startLoad: string): string {
  const rows = results.map((r) => {
    const bare = results.find((b) => b.target === "bare" && b.protocol === r.protocol && b.concurrency === r.concurrency);
    const rate = r.calls / r.seconds;
    const ratio = bare && r.target !== "bare" ? `${r.target === "gateway" ? "**" : ""}${fmt(rate / (bare.calls / bare.seconds), 2)}${r.target === "gateway" ? "**" : ""}` : "";
    return [
      TARGET_NAMES[r.target],
      r.protocol,
      String(r.concurrency),
      int(r.calls),
      String(r.errors),
      `**${int(rate)}**`,
      ratio,
      fmt(r.latency.p50, 2),
      fmt(r.latency.p99, 2),
      int(r.serverCpuUs),
      int(r.postgresCpuUs),
      int(r.clientCpuUs),
      `${int(r.otherShare * 100)} %`,
      fmt(r.load, 2),
    ];
  });
  const gateway = results.filter((r) => r.target === "gateway");
  const ratios = gateway
    .map((g) => {
      const b = results.find((x) => x.target === "bare" && x.protocol === g.protocol && x.concurrency === g.concurrency);
      return b ? g.calls / g.seconds / (b.calls / b.seconds) : Number.NaN;
    })
    .filter(Number.isFinite);
  const frameworkRatios = gateway
    .map((g) => {
      const f = results.find((x) => x.target === "connect-node" && x.protocol === g.protocol && x.concurrency === g.concurrency);
      return f ? g.calls / g.seconds / (f.calls / f.seconds) : Number.NaN;
    })
    .filter(Number.isFinite);
  const span = (xs: number[]) => (xs.length ? `${fmt(Math.min(...xs), 2)}–${fmt(Math.max(...xs), 2)}` : "–");
  return [
    `### Run ${new Date().toISOString().slice(0, 16)}Z`,
    "",
    machineFacts({
      postgres: `${postgres.version}, ${postgres.description}`,
      "load averages when measuring began": startLoad,
      "enrolled agents (sessions)": String(AGENTS),
      "per mode": `${SECONDS} s or ${int(MAX_CALLS)} calls, after ${WARMUP_SECONDS} s warm-up per target and protocol`,
      command: `\`${commandLine()}\``,
    }),
    "",
    table(
      ["target", "protocol", "concurrency", "calls", "errors", "calls/s", "× bare", "p50 ms", "p99 ms", "server CPU µs/call", "PostgreSQL CPU µs/call", "client CPU µs/call", "other procs", "load 1 min"],
      rows,
      (i) => i > 1,
    ),
    "",
    `Gateway ÷ bare echo over all levels: ${span(ratios)} (target ≥ 0.25); gateway ÷ bare connect-node: ${span(frameworkRatios)} (what the gateway's own code leaves of connect-node's rate).`,
  ].join("\n");
}

/** Registers `n` agents through the real API and hands each a session; returns the session tokens. */
async function enroll(gateway: BenchGateway, n: number, log: (line: string) => void): Promise<string[]> {
  const t0 = performance.now();
  const client = gatewayClient(createConnectTransport({ baseUrl: gateway.url, httpVersion: "2" }));
  const admin = adminClient(EnrollmentTokenService, gateway.url, gateway.adminKey);
  const { secret } = await admin.createEnrollmentToken({ maxUses: n });
  const tokens: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const identity = generateKeyPair();
      const reg = await register(client, { token: secret, identity, name: `bench-hb-${i}` });
      tokens.push((await handshake(client, reg.agentId, identity)).token);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  log(`enrolled ${n} agents with sessions in ${int(performance.now() - t0)} ms`);
  return tokens;
}

function list(name: string, fallback: string): string[] {
  return (process.env[name] ?? fallback)
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

function envNumber(name: string, fallback: number): number {
  const value = Number(process.env[name]);
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
