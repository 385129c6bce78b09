/**
 * Revocation broadcast: how long a RevokeAgent takes to reach N open ControlStreams as a
 * PeerRevoked command (p50/p99/max from the start of the RevokeAgent call to each stream's
 * receipt), and memory per open idle stream (gateway VmRSS delta / N after forced GC). Against
 * the real gateway in its own process on real PostgreSQL; bare baseline in the same run, same
 * client, same N: a plain connect-node server with a trivial bidi handler that pushes one
 * message to all its streams on a trigger (bench/lib/bare-control-server.ts).
 *
 *   npx tsx bench/broadcast.ts            # N = 1,000 and 10,000; writes bench/RESULTS.md
 *   npx tsx bench/broadcast.ts --profile  # also: the largest N again under `node --cpu-prof`
 *   npx tsx bench/broadcast.ts --profile-only
 *   npx tsx bench/broadcast.ts --heap-profile  # also: heap growth per stream by constructor, bare and gateway
 *   npx tsx bench/broadcast.ts --heap-profile-only
 *
 * Knobs (env): BENCH_BC_SIZES ("1000,10000"), BENCH_BC_BROADCASTS per target (2),
 * BENCH_BC_PER_CONNECTION streams per HTTP/2 connection (100), BENCH_BC_ACK ("1": streams ack
 * like agents do), BENCH_MAX_LOAD wait for load below this (1.5).
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import pg from "pg";
import { RevokeAgentRequestSchema, RevokeAgentResponseSchema } from "../gen/agentgateway/admin/v1/agents_pb.js";
import { HealthCheckRequestSchema, HealthCheckResponseSchema } from "../gen/grpc/health/v1/health_pb.js";
import { UploadHeartbeatRequestSchema, UploadHeartbeatResponseSchema } from "../gen/agentgateway/v1/ingest_pb.js";
import { newSecret } from "../client/protocol/secrets.js";
import { type MeasuredProcess, type MemorySnapshot, spawnGateway, spawnMeasured } from "./lib/child.js";
import { monotonicMicros, summarizeProfile } from "./lib/cpu-profile.js";
import { heapGrowth } from "./lib/heap-snapshot.js";
import { SessionPool, unary } from "./lib/lean-client.js";
import { type BenchDatabase, type BenchPostgres, startPostgres } from "./lib/postgres.js";
import { clusterCpuSeconds, load1, loadAverages, machineBusySeconds, waitForQuietMachine } from "./lib/proc.js";
import { commandLine, machineFacts, writeSection } from "./lib/results.js";
import { fmt, int, sleep, summarize, table } from "./lib/stats.js";
import { StreamFleet } from "./lib/stream-fleet.js";

const SIZES = (process.env.BENCH_BC_SIZES ?? "1000,10000")
  .split(",")
  .map(Number)
  .filter((n) => n > 0);
const BROADCASTS = envNumber("BENCH_BC_BROADCASTS", 2);
const PER_CONNECTION = envNumber("BENCH_BC_PER_CONNECTION", 100);
const ACK = (process.env.BENCH_BC_ACK ?? "1") !== "0";
const MAX_LOAD = envNumber("BENCH_MAX_LOAD", 1.5);
const QUIET_TIMEOUT_MS = envNumber("BENCH_QUIET_TIMEOUT", 300) * 1000;
const PROFILE_ONLY = process.argv.includes("--profile-only");
const PROFILE = PROFILE_ONLY || process.argv.includes("--profile");
const HEAP_PROFILE_ONLY = process.argv.includes("--heap-profile-only");
const HEAP_PROFILE = HEAP_PROFILE_ONLY || process.argv.includes("--heap-profile");
/** Only profiles: no measured sizes. */
const PROFILES_ONLY = PROFILE_ONLY || HEAP_PROFILE_ONLY;
/** Streams in the heap-profile run (two snapshots of each process: small enough to parse). */
const HEAP_N = envNumber("BENCH_BC_HEAP_N", 1000);
/** Streams opened first and measured as the memory reference (warms every code path). */
const WARM_STREAMS = 100;
const OPEN_TIMEOUT_MS = 300_000;
const BROADCAST_TIMEOUT_MS = 120_000;
const GATEWAY_ENV = {
  // No keepalive pings or max-age closes during the run: idle streams stay idle.
  AGW_STREAM_PING_INTERVAL: "1h",
  AGW_STREAM_MAX_AGE: "24h",
  // Every simulated agent connects from 127.0.0.1: lift the per-source connection cap.
  AGW_MAX_CONNECTIONS_PER_SOURCE: "0",
};

interface BroadcastResult {
  target: "gateway" | "bare";
  n: number;
  index: number;
  complete: boolean;
  received: number;
  latency: ReturnType<typeof summarize>;
  /** Duration of the RevokeAgent / trigger call itself. */
  callMs: number;
  serverCpuMs: number;
  postgresCpuMs: number;
  clientCpuMs: number;
  /** Share of the machine's CPU used by other processes during the broadcast (contamination). */
  otherShare: number;
  load: number;
}

interface TargetResult {
  target: "gateway" | "bare";
  n: number;
  openSeconds: number;
  memoryWarm: MemorySnapshot;
  memoryFull: MemorySnapshot;
  broadcasts: BroadcastResult[];
  ackedRows: number | undefined;
  goAways: number;
  /** Openings shed by admission control and retried. */
  shed: number;
  streamErrors: string | undefined;
}

const log = (line: string) => console.error(`[broadcast] ${line}`);

async function main(): Promise<void> {
  const postgres = await startPostgres();
  try {
    log(`PostgreSQL ${postgres.version}; sizes ${SIZES.join(", ")}; ${BROADCASTS} broadcasts each; ack=${ACK}`);
    const startLoad = loadAverages();
    const results: TargetResult[] = [];
    for (const n of PROFILES_ONLY ? [] : SIZES) {
      await waitForQuietMachine(MAX_LOAD, QUIET_TIMEOUT_MS, log);
      results.push(await runBare(n));
      await waitForQuietMachine(MAX_LOAD, QUIET_TIMEOUT_MS, log);
      results.push(await runGateway(postgres, n));
    }
    let profileBlock = "";
    if (PROFILE && !HEAP_PROFILE_ONLY) profileBlock = await profileRun(postgres, Math.max(...SIZES));
    if (HEAP_PROFILE) profileBlock += `${profileBlock ? "\n\n" : ""}${await heapProfileRun(postgres)}`;
    const report = PROFILES_ONLY ? profileBlock : renderRun(results, postgres, startLoad) + (profileBlock ? `\n\n${profileBlock}` : "");
    console.log(report);
    if (process.env.BENCH_NO_WRITE) return;
    writeSection("## Revocation broadcast to open ControlStreams", INTRO, report, 6);
    log("wrote bench/RESULTS.md");
  } finally {
    await postgres.stop();
  }
}

const INTRO = `Time from the start of an \`AgentService/RevokeAgent\` call until each of N open ControlStreams
has received the resulting \`PeerRevoked\` command (p50 / p99 / max over the N streams), and memory
per open idle stream: (VmRSS with N streams − VmRSS with ${WARM_STREAMS} streams) / (N − ${WARM_STREAMS}), each read from
\`/proc/<pid>/status\` after two forced full GCs in the server (a preload, bench/lib/memory-hook.ts, runs
\`gc()\` on SIGUSR2; the server code is unchanged). Gateway: real process on 127.0.0.1, real
PostgreSQL; agents and sessions are inserted straight into the database (random 32-byte keys,
ACTIVE, the bootstrap tenant; \`sessions.token_hash\` = SHA-256 of a \`newSecret("session")\` token),
every agent of the tenant has an open stream, and the revoked agent has none.
\`AGW_STREAM_PING_INTERVAL=1h\` and \`AGW_STREAM_MAX_AGE=24h\` for the run, so no keepalive pings or
max-age closes interfere. Bare baseline, same run, same client and N: a plain connect-node server
(\`bench/lib/bare-control-server.ts\`: ControlStream handler keeping a set of streams; a unary call
pushes one Command object to all of them). Client: lean raw \`node:http2\` with hand-framed Connect
envelopes, ${PER_CONNECTION} streams per HTTP/2 connection (Node's server advertises
SETTINGS_MAX_CONCURRENT_STREAMS = \`AGW_MAX_STREAMS_PER_CONNECTION\`, 100 by default); every stream
acks each command as an agent does. "Other procs' CPU" is the rest of the machine's busy CPU (/proc/stat)
during the broadcast, as a share of all cores (other engineers' work). Each target gets a fresh database and process per N, then
${BROADCASTS} broadcasts in a row (the first one includes cold code paths).`;

/** Rows for N agents (+ victims) and sessions, straight into the gateway's database. */
async function seedFleet(database: BenchDatabase, n: number, victims: number): Promise<{ tokens: string[]; victimIds: string[] }> {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    const tenant = await client.query<{ id: string }>("select id from tenants order by created_at limit 1");
    const tenantId = tenant.rows[0]?.id;
    if (!tenantId) throw new Error("the gateway did not bootstrap a tenant");
    const total = n + victims;
    const ids = Array.from({ length: total }, () => randomUUID());
    const tokens: string[] = [];
    for (let from = 0; from < total; from += 5000) {
      const chunk = ids.slice(from, from + 5000);
      await client.query(
        `insert into agents (id, tenant_id, name, identity_public_key, verification_code, state)
         select id, $2::uuid, 'bench-' || ord, key, 'BENCH-CODE', 'ACTIVE'
         from unnest($1::uuid[], $3::bytea[]) with ordinality as t(id, key, ord)`,
        [chunk, tenantId, chunk.map(() => randomBytes(32))],
      );
    }
    // Sessions for the N stream holders only; the victims never open a stream.
    for (let from = 0; from < n; from += 5000) {
      const chunk = ids.slice(from, Math.min(n, from + 5000));
      const secrets = chunk.map(() => newSecret("session"));
      tokens.push(...secrets.map((s) => s.secret));
      await client.query(
        `insert into sessions (agent_id, id, tenant_id, token_hash, expires_at)
         select agent_id, gen_random_uuid(), $2::uuid, hash, now() + interval '1 day'
         from unnest($1::uuid[], $3::bytea[]) as t(agent_id, hash)`,
        [chunk, tenantId, secrets.map((s) => Buffer.from(s.hash))],
      );
    }
    return { tokens, victimIds: ids.slice(n) };
  } finally {
    await client.end();
  }
}

/**
 * One gateway process over a fresh database with N streams, then the broadcasts. With a
 * `profile` window the gateway runs under `node --cpu-prof` and the window is set around the
 * last broadcast; the result then carries the profile's path.
 */
async function runGateway(postgres: BenchPostgres, n: number, profile?: { fromUs: number; toUs: number }): Promise<TargetResult & { profilePath?: string }> {
  const database = await postgres.createDatabase("agw_bench_bc");
  let gateway: MeasuredProcess | undefined;
  let fleet: StreamFleet | undefined;
  let admin: SessionPool | undefined;
  let result: TargetResult | undefined;
  let profilePath: string | undefined;
  try {
    const gw = await spawnGateway(database.url, GATEWAY_ENV, profile !== undefined);
    gateway = gw;
    const { tokens, victimIds } = await seedFleet(database, n, BROADCASTS);
    fleet = StreamFleet.create(n, { perConnection: PER_CONNECTION, openConcurrency: 200, ack: ACK, openTimeoutMs: OPEN_TIMEOUT_MS });
    const { openSeconds, memoryWarm, memoryFull } = await openFleet(fleet, gw, tokens, n);
    log(`gateway n=${n}: ${n} streams open in ${fmt(openSeconds, 1)} s, ${fmt(perStreamKiB(memoryWarm, memoryFull, n), 1)} KiB RSS/stream`);
    const broadcasts: BroadcastResult[] = [];
    for (let b = 0; b < BROADCASTS; b++) {
      const victim = victimIds[b];
      if (!victim) throw new Error("not enough victims");
      // A fresh admin connection per broadcast, opened (and warmed) just before it: the
      // gateway's connection guard closes a connection that opens no stream within
      // AGW_FIRST_REQUEST_TIMEOUT or stays idle past AGW_IDLE_TIMEOUT, and opening N streams
      // takes longer than either.
      admin?.close();
      admin = await SessionPool.open(gw.url, 1);
      const adminPool = admin.get();
      await unary(adminPool, "/grpc.health.v1.Health/Check", HealthCheckRequestSchema, create(HealthCheckRequestSchema, {}), HealthCheckResponseSchema);
      if (b === BROADCASTS - 1 && profile) profile.fromUs = monotonicMicros();
      broadcasts.push(
        await measureBroadcast("gateway", n, b, fleet, gw, postgres, () =>
          unary(
            adminPool,
            "/agentgateway.admin.v1.AgentService/RevokeAgent",
            RevokeAgentRequestSchema,
            create(RevokeAgentRequestSchema, { id: victim, reason: "bench: broadcast" }),
            RevokeAgentResponseSchema,
            { authorization: `Bearer ${gw.adminKey}` },
          ),
        ),
      );
      if (b === BROADCASTS - 1 && profile) profile.toUs = monotonicMicros();
      await sleep(1500); // acks flush (every 200 ms) before the next broadcast
    }
    const acked = await ackedCount(database.url);
    result = {
      target: "gateway",
      n,
      openSeconds,
      memoryWarm,
      memoryFull,
      broadcasts,
      ackedRows: acked,
      goAways: fleet.goAways,
      shed: fleet.shed,
      streamErrors: fleet.firstError,
    };
  } finally {
    fleet?.close();
    admin?.close();
    profilePath = await gateway?.stop();
    await database.drop().catch(() => {});
  }
  if (!result) throw new Error("unreachable: the gateway run produced no result");
  return { ...result, profilePath };
}

async function runBare(n: number): Promise<TargetResult> {
  let server: MeasuredProcess | undefined;
  let fleet: StreamFleet | undefined;
  let trigger: SessionPool | undefined;
  try {
    const bare = await spawnMeasured({ script: ["bench/lib/bare-control-server.ts"], ready: /BARE listening on (http:\/\/[\d.]+:\d+)/ });
    server = bare;
    trigger = await SessionPool.open(bare.url, 1);
    const triggerPool = trigger;
    fleet = StreamFleet.create(n, { perConnection: PER_CONNECTION, openConcurrency: 200, ack: ACK, openTimeoutMs: OPEN_TIMEOUT_MS });
    const { openSeconds, memoryWarm, memoryFull } = await openFleet(fleet, bare, [], n);
    log(`bare n=${n}: ${n} streams open in ${fmt(openSeconds, 1)} s, ${fmt(perStreamKiB(memoryWarm, memoryFull, n), 1)} KiB RSS/stream`);
    const broadcasts: BroadcastResult[] = [];
    for (let b = 0; b < BROADCASTS; b++) {
      broadcasts.push(
        await measureBroadcast("bare", n, b, fleet, bare, undefined, () =>
          unary(
            triggerPool.get(),
            "/agentgateway.v1.AgentGatewayService/UploadHeartbeat",
            UploadHeartbeatRequestSchema,
            create(UploadHeartbeatRequestSchema, {}),
            UploadHeartbeatResponseSchema,
          ),
        ),
      );
      await sleep(1500);
    }
    return { target: "bare", n, openSeconds, memoryWarm, memoryFull, broadcasts, ackedRows: undefined, goAways: fleet.goAways, shed: fleet.shed, streamErrors: fleet.firstError };
  } finally {
    fleet?.close();
    trigger?.close();
    await server?.stop();
  }
}

/** Opens WARM_STREAMS streams, reads memory, opens the rest, reads memory again. */
async function openFleet(fleet: StreamFleet, server: MeasuredProcess, tokens: string[], n: number) {
  const warm = Math.min(WARM_STREAMS, n);
  await fleet.open(server.url, tokens, 0, warm);
  const memoryWarm = await server.memoryAfterGc(1500);
  const t0 = performance.now();
  await fleet.open(server.url, tokens, warm, n);
  const openSeconds = (performance.now() - t0) / 1000;
  const memoryFull = await server.memoryAfterGc(3000);
  return { openSeconds: (openSeconds * n) / Math.max(1, n - warm), memoryWarm, memoryFull };
}

async function measureBroadcast(
  target: "gateway" | "bare",
  n: number,
  index: number,
  fleet: StreamFleet,
  server: MeasuredProcess,
  postgres: BenchPostgres | undefined,
  trigger: () => Promise<unknown>,
): Promise<BroadcastResult> {
  fleet.reset();
  const load = load1();
  const pgPid = postgres?.postmasterPid;
  const cpu0 = server.cpuSeconds();
  const pg0 = pgPid ? clusterCpuSeconds(pgPid) : Number.NaN;
  const client0 = process.cpuUsage();
  const busy0 = machineBusySeconds();
  const t0 = performance.now();
  await trigger();
  const callMs = performance.now() - t0;
  const complete = await fleet.waitForCommands(n, BROADCAST_TIMEOUT_MS);
  const elapsedMs = performance.now() - t0;
  const client = process.cpuUsage(client0);
  const busyMs = (machineBusySeconds() - busy0) * 1000;
  const serverCpuMs = (server.cpuSeconds() - cpu0) * 1000;
  const postgresCpuMs = pgPid ? (clusterCpuSeconds(pgPid) - pg0) * 1000 : Number.NaN;
  const clientCpuMs = (client.user + client.system) / 1000;
  const otherMs = busyMs - serverCpuMs - (Number.isNaN(postgresCpuMs) ? 0 : postgresCpuMs) - clientCpuMs;
  const latencies: number[] = [];
  for (const at of fleet.receivedAt) if (!Number.isNaN(at)) latencies.push(at - t0);
  const latency = summarize(latencies);
  log(
    `${target} n=${n} #${index + 1}: ${latencies.length}/${n} received, p50 ${fmt(latency.p50, 0)} ms, p99 ${fmt(latency.p99, 0)} ms, max ${fmt(latency.max, 0)} ms`,
  );
  return {
    target,
    n,
    index,
    complete,
    received: latencies.length,
    latency,
    callMs,
    serverCpuMs,
    postgresCpuMs,
    clientCpuMs,
    otherShare: Math.max(0, otherMs) / (elapsedMs * cpus().length),
    load,
  };
}

async function ackedCount(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const res = await client.query<{ n: string }>("select (select count(*) from agent_commands where acked_at is not null) + (select count(*) from tenant_command_acks) as n");
    return Number(res.rows[0]?.n ?? 0);
  } finally {
    await client.end();
  }
}

function perStreamKiB(warm: MemorySnapshot, full: MemorySnapshot, n: number): number {
  return (full.vmRssKiB - warm.vmRssKiB) / Math.max(1, n - Math.min(WARM_STREAMS, n));
}

function perStreamBytes(warm: number, full: number, n: number): number {
  return (full - warm) / Math.max(1, n - Math.min(WARM_STREAMS, n));
}

/** The largest N once more with the gateway under `node --cpu-prof`; self time during the last broadcast. */
async function profileRun(postgres: BenchPostgres, n: number): Promise<string> {
  const window = { fromUs: 0, toUs: 0 };
  const result = await runGateway(postgres, n, window);
  if (!result.profilePath) return "### Profile\n\n(no CPU profile was written)";
  const s = summarizeProfile(result.profilePath, window, 25);
  const last = result.broadcasts.at(-1);
  return [
    `### Profile ${new Date().toISOString()} — gateway under \`node --cpu-prof\`, broadcast #${BROADCASTS} to ${int(n)} streams`,
    "",
    `Under the profiler: p50 ${fmt(last?.latency.p50 ?? Number.NaN, 0)} ms, p99 ${fmt(last?.latency.p99 ?? Number.NaN, 0)} ms, max ${fmt(last?.latency.max ?? Number.NaN, 0)} ms; busy CPU in the window ${fmt(s.totalMs, 0)} ms (${fmt((s.totalMs * 1000) / n, 1)} µs per stream), idle ${fmt(s.idleMs, 0)} ms${s.windowed ? "" : " (window did not line up: whole profile)"}. Self time by area:`,
    "",
    table(
      ["area", "self ms", "share", "µs / stream"],
      s.areas.map((a) => [a.name, fmt(a.ms, 0), `${fmt(a.share * 100, 1)} %`, fmt((a.ms * 1000) / n, 1)]),
    ),
    "",
    "Top functions by self time:",
    "",
    table(
      ["function", "where", "self ms", "share", "µs / stream"],
      s.functions.map((f) => [f.name.replace(/\|/g, "\\|"), f.where || "–", fmt(f.ms, 0), `${fmt(f.share * 100, 1)} %`, fmt((f.ms * 1000) / n, 1)]),
      (i) => i > 1,
    ),
  ].join("\n");
}

/** Bare and gateway at HEAP_N streams with heap snapshots at 100 and at HEAP_N streams: what each added stream keeps. */
async function heapProfileRun(postgres: BenchPostgres): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "agw-heap-"));
  process.env.BENCH_HEAP_SNAPSHOT_DIR = dir;
  try {
    const runs = [await runBare(HEAP_N), await runGateway(postgres, HEAP_N)];
    const parts = [
      `### Heap per stream ${new Date().toISOString()} — growth from ${WARM_STREAMS} to ${int(HEAP_N)} open streams, by V8 heap node type · constructor (self size; bytes and objects per added stream)`,
    ];
    for (const r of runs) {
      const growth = heapGrowth(r.memoryWarm.snapshot ?? "", r.memoryFull.snapshot ?? "", HEAP_N - WARM_STREAMS, 20);
      parts.push(
        "",
        `${r.target === "gateway" ? "Gateway" : "Bare connect-node"}: ${fmt(growth.total / 1024, 1)} KiB of heap per stream (RSS is not comparable here: writing the snapshots grows it):`,
        "",
        table(
          ["group", "bytes / stream", "objects / stream"],
          growth.groups.map((g) => [g.group.replace(/\|/g, "\\|"), fmt(g.bytes, 0), fmt(g.count, 1)]),
          (i) => i > 0,
        ),
      );
    }
    return parts.join("\n");
  } finally {
    delete process.env.BENCH_HEAP_SNAPSHOT_DIR;
    rmSync(dir, { recursive: true, force: true });
  }
}

function renderRun(results: TargetResult[], postgres: BenchPostgres, startLoad: string): string {
  const rows: string[][] = [];
  for (const r of results) {
    for (const b of r.broadcasts) {
      const bare = results.find((x) => x.target === "bare" && x.n === r.n)?.broadcasts[b.index];
      rows.push([
        int(r.n),
        r.target === "gateway" ? "gateway (RevokeAgent)" : "bare connect-node",
        `#${b.index + 1}`,
        b.complete ? int(b.received) : `**${int(b.received)} (timeout)**`,
        fmt(b.callMs, 0),
        fmt(b.latency.min, 0),
        fmt(b.latency.p50, 0),
        fmt(b.latency.p99, 0),
        `**${fmt(b.latency.max, 0)}**`,
        r.target === "gateway" && bare ? `${fmt(b.latency.max / bare.latency.max, 1)}×` : "1",
        fmt(b.serverCpuMs, 0),
        fmt((b.serverCpuMs * 1000) / r.n, 1),
        fmt(b.postgresCpuMs, 0),
        fmt(b.clientCpuMs, 0),
        `${fmt(b.otherShare * 100, 0)} %`,
        fmt(b.load, 2),
      ]);
    }
  }
  const mem = results.map((r) => [
    int(r.n),
    r.target === "gateway" ? "gateway" : "bare connect-node",
    fmt(r.openSeconds, 1),
    int(r.n / r.openSeconds),
    fmt(r.memoryFull.vmRssKiB / 1024, 1),
    `**${fmt(perStreamKiB(r.memoryWarm, r.memoryFull, r.n), 1)}**`,
    fmt(perStreamBytes(r.memoryWarm.heapUsed, r.memoryFull.heapUsed, r.n) / 1024, 1),
    fmt(perStreamBytes(r.memoryWarm.external, r.memoryFull.external, r.n) / 1024, 1),
    r.ackedRows === undefined ? "–" : int(r.ackedRows),
    int(r.shed),
    r.streamErrors ? r.streamErrors.slice(0, 60) : "none",
  ]);
  return [
    `### Run ${new Date().toISOString()}`,
    "",
    machineFacts({
      PostgreSQL: `${postgres.version}, ${postgres.description}`,
      "load averages when measuring started": startLoad,
      command: `\`${commandLine()}\``,
    }),
    "",
    "Broadcast latency (ms from the start of the RevokeAgent / trigger call to each stream's receipt):",
    "",
    table(
      [
        "N",
        "target",
        "bcast",
        "received",
        "call ms",
        "first ms",
        "p50 ms",
        "p99 ms",
        "max ms",
        "max × bare",
        "server CPU ms",
        "server CPU µs/stream",
        "PostgreSQL CPU ms",
        "client CPU ms",
        "other procs' CPU",
        "load 1m",
      ],
      rows,
      (i) => i !== 1 && i !== 2,
    ),
    "",
    "Open streams (memory after forced GC; per stream = delta from the first 100 streams to N):",
    "",
    table(
      [
        "N",
        "target",
        "open s (all N)",
        "streams opened/s",
        "VmRSS MiB at N",
        "RSS KiB / stream",
        "heap KiB / stream",
        "external KiB / stream",
        "acked rows",
        "openings shed (retried)",
        "stream errors",
      ],
      mem,
      (i) => i !== 1 && i !== 10,
    ),
  ].join("\n");
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
