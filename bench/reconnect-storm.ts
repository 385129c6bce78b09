/**
 * Agent reconnect after a gateway restart: N real agent supervisors (agent/lib/supervisor.ts,
 * each with its own HTTP/2 connection, in this process) hold ControlStreams to one gateway
 * process; the gateway is restarted on the same address and every reconnect attempt is
 * counted per 100 ms bucket. Scenarios, in one run:
 *
 *   crash      SIGKILL, down BENCH_DOWN_MS, started again: the agents' jittered backoff alone
 *   baseline   the same crash with the same backoff but no jitter (what a naive fleet does)
 *   graceful   SIGTERM: GoAway DRAIN with the gateway's jittered reconnect_after, then restart
 *
 * For the crash, the curve is compared with what the backoff allows: a Monte Carlo model of
 * the same policy (N agents, the measured time until the gateway listened again) gives the
 * distribution of the busiest 100 ms bucket; the measured peak should sit inside it.
 *
 *   npx tsx bench/reconnect-storm.ts          (BENCH_AGENTS=200 BENCH_DOWN_MS=5000)
 *
 * Uses DATABASE_URL if set, else a throwaway embedded PostgreSQL. Binds only to 127.0.0.1.
 * BENCH_NO_WRITE=1 prints without touching bench/RESULTS.md.
 * Bounded: BENCH_AGENTS agents, each scenario at most BENCH_SCENARIO_TIMEOUT_MS. Prints the
 * curves and writes them to bench/RESULTS.md under "Agent reconnect after gateway restart".
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { pino } from "pino";
import { EnrollmentTokenService } from "../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { DEFAULT_BACKOFF } from "../agent/lib/backoff.js";
import { gatewayClient, type Identity, register } from "../agent/lib/direct.js";
import { type AgentStateFile, newState, StateStore } from "../agent/lib/state.js";
import { Supervisor } from "../agent/lib/supervisor.js";
import { type GatewayTransport, createGatewayTransport } from "../client/transport.js";
import { adminClient } from "../test/support/admin.js";
import { type BenchGateway, spawnGateway } from "./lib/child.js";
import { freePort } from "../test/support/free-port.js";
import { startPostgres } from "./lib/postgres.js";
import { commandLine, machineFacts, writeSection } from "./lib/results.js";

const AGENTS = envInt("BENCH_AGENTS", 200);
const DOWN_MS = envInt("BENCH_DOWN_MS", 5000);
const DRAIN_SPREAD_MS = envInt("BENCH_DRAIN_SPREAD_MS", 5000);
const SCENARIO_TIMEOUT_MS = envInt("BENCH_SCENARIO_TIMEOUT_MS", 120_000);
const BUCKET_MS = 100;
const MODEL_RUNS = 2000;

interface Enrolled {
  identity: Identity;
  store: StateStore;
  state: AgentStateFile;
}

interface Scenario {
  id: "crash" | "baseline" | "graceful";
  title: string;
  jitter: boolean;
}

interface Measured {
  scenario: Scenario;
  /** Attempt times, ms after the restart began (kill or SIGTERM). */
  attempts: number[];
  /** When the new gateway printed "listening", ms after the restart began. */
  readyAtMs: number;
  /** When the last agent had its stream back, ms after the restart began. */
  allBackAtMs: number;
  reconnected: number;
  /** Size of the fleet. */
  agents: number;
}

const SCENARIOS: Scenario[] = [
  { id: "crash", title: "crash (SIGKILL), agents' jittered backoff", jitter: true },
  { id: "baseline", title: "crash (SIGKILL), same backoff without jitter (baseline)", jitter: false },
  { id: "graceful", title: `graceful restart (SIGTERM → GoAway DRAIN, spread ${DRAIN_SPREAD_MS / 1000} s), jittered backoff`, jitter: true },
];

async function main(): Promise<void> {
  const postgres = await startPostgres();
  const database = await postgres.createDatabase("agw_bench_storm");
  const port = await freePort();
  const env = {
    AGW_LISTEN: `127.0.0.1:${port}`,
    AGW_REGISTER_RATE: "100000/s:100000",
    AGW_HANDSHAKE_RATE: "1000/s:1000",
    AGW_HANDSHAKE_SOURCE_RATE: "100000/s:100000",
    AGW_DRAIN_SPREAD: `${DRAIN_SPREAD_MS}ms`,
    AGW_DB_POOL_SIZE: "20",
    // Every simulated agent connects from 127.0.0.1: lift the per-source connection cap.
    AGW_MAX_CONNECTIONS_PER_SOURCE: "0",
  };
  const root = mkdtempSync(join(tmpdir(), "agw-bench-storm-"));
  let gateway: BenchGateway | undefined;
  const results: Measured[] = [];
  try {
    gateway = await spawnGateway(database.url, env);
    console.log(`gateway at ${gateway.url}; enrolling ${AGENTS} agents…`);
    const fleet = await enroll(gateway, root);
    for (const scenario of SCENARIOS) {
      const run = await runScenario(scenario, fleet, gateway, database.url, env);
      gateway = run.gateway;
      results.push(run.measured);
      console.log(`\n${scenario.title}\n${curveText(run.measured)}`);
    }
  } finally {
    await gateway?.stop();
    await database.drop().catch(() => {});
    await postgres.stop();
    rmSync(root, { recursive: true, force: true });
  }
  report(results, postgres.version);
}

/** Registers AGENTS identities with one multi-use token, each with its own state directory. */
async function enroll(gateway: BenchGateway, root: string): Promise<Enrolled[]> {
  const admin = adminClient(EnrollmentTokenService, gateway.url, gateway.adminKey);
  const { secret } = await admin.createEnrollmentToken({ maxUses: AGENTS, requiresApproval: false });
  const transport = createGatewayTransport(gateway.url, { pins: [] });
  const client = gatewayClient(transport.transport);
  const fleet: Enrolled[] = [];
  for (let i = 0; i < AGENTS; i += 20) {
    const chunk = await Promise.all(
      Array.from({ length: Math.min(20, AGENTS - i) }, async (_, j) => {
        const store = new StateStore(join(root, `agent-${i + j}`));
        await store.init();
        const identity = await store.createIdentity();
        const name = `storm-${i + j}`;
        const reg = await register(client, { token: secret, identity, name });
        const state = newState({
          server: gateway.url,
          agentId: reg.agentId,
          tenantId: reg.tenantId,
          name,
          labels: {},
          verificationCode: reg.verificationCode,
          tls: { pins: [] },
          releaseKeys: [],
        });
        await store.save(state);
        return { identity, store, state };
      }),
    );
    fleet.push(...chunk);
  }
  transport.close();
  return fleet;
}

/** Connects the fleet, restarts the gateway the scenario's way, and records every attempt. */
async function runScenario(
  scenario: Scenario,
  fleet: Enrolled[],
  gateway: BenchGateway,
  databaseUrl: string,
  env: Record<string, string>,
): Promise<{ measured: Measured; gateway: BenchGateway }> {
  let t0 = Number.POSITIVE_INFINITY;
  const attempts: number[] = [];
  const backAt = new Map<number, number>();
  const connected = new Set<number>();
  const logger = pino({ level: "silent" });
  const transports: GatewayTransport[] = [];
  const supervisors = fleet.map((agent, i) => {
    const transport = createGatewayTransport(agent.state.server, { pins: [] });
    transports.push(transport);
    return new Supervisor({
      client: gatewayClient(transport.transport),
      identity: agent.identity,
      store: agent.store,
      state: agent.state,
      backoff: DEFAULT_BACKOFF,
      healthyAfterMs: 30_000,
      hostInfo: () => ({ hostname: "bench", os: "linux", arch: "x64", agentVersion: "1.0.0", labels: {} }),
      version: () => "1.0.0",
      commands: { releaseKeys: [], updateTimeoutMs: 1000, stateDir: agent.store.dir, installedVersion: async (_h, v) => v },
      logger,
      // Without jitter every draw is the top of its window: the classic lockstep retry.
      random: scenario.jitter ? Math.random : () => 1,
      observer: (event) => {
        const now = performance.now();
        if (event.type === "attempt" && now >= t0) attempts.push(now - t0);
        if (event.type === "connected") {
          connected.add(i);
          if (now >= t0) backAt.set(i, now - t0);
        }
        if (event.type === "disconnected") connected.delete(i);
      },
    });
  });
  const running = supervisors.map((s) => s.run());
  await waitUntil(() => connected.size === fleet.length, 60_000, "the fleet to connect");
  await sleep(2000);
  t0 = performance.now();
  if (scenario.id === "graceful") {
    await gateway.stop();
    gateway = await spawnGateway(databaseUrl, env);
  } else {
    gateway.child.kill("SIGKILL");
    await new Promise<void>((resolve) =>
      gateway.child.exitCode !== null || gateway.child.signalCode !== null ? resolve() : gateway.child.once("exit", () => resolve()),
    );
    await sleep(DOWN_MS);
    gateway = await spawnGateway(databaseUrl, env);
  }
  const readyAtMs = performance.now() - t0;
  await waitUntil(() => backAt.size === fleet.length, SCENARIO_TIMEOUT_MS, "every agent to reconnect");
  const allBackAtMs = Math.max(...backAt.values());
  await sleep(1000);
  await Promise.all(supervisors.map((s) => s.stop(1000)));
  await Promise.all(running);
  for (const t of transports) t.close();
  return { gateway, measured: { scenario, attempts: attempts.sort((a, b) => a - b), readyAtMs, allBackAtMs, reconnected: backAt.size, agents: fleet.length } };
}

/** Attempts per 100 ms bucket, from the restart to the last attempt. */
function buckets(attempts: number[]): number[] {
  const last = attempts.at(-1) ?? 0;
  const counts = new Array<number>(Math.floor(last / BUCKET_MS) + 1).fill(0);
  for (const t of attempts) {
    const b = Math.floor(t / BUCKET_MS);
    counts[b] = (counts[b] ?? 0) + 1;
  }
  return counts;
}

/**
 * The busiest bucket the backoff allows: simulate the same policy (every agent disconnected at
 * t = 0, attempts fail until the gateway listens at `readyAtMs`) many times, and return the
 * distribution of the busiest 100 ms bucket.
 */
function modelPeak(agents: number, readyAtMs: number, jitter: boolean): { p50: number; p999: number; max: number } {
  const peaks: number[] = [];
  const { initialMs, maxMs, floorMs } = DEFAULT_BACKOFF;
  for (let run = 0; run < (jitter ? MODEL_RUNS : 1); run++) {
    const counts = new Map<number, number>();
    for (let a = 0; a < agents; a++) {
      let t = 0;
      for (let k = 0; k < 64; k++) {
        const ceiling = Math.min(maxMs, initialMs * 2 ** k);
        const floor = Math.min(floorMs, ceiling);
        t += floor + (jitter ? Math.random() : 1) * (ceiling - floor);
        const b = Math.floor(t / BUCKET_MS);
        counts.set(b, (counts.get(b) ?? 0) + 1);
        if (t >= readyAtMs) break;
      }
    }
    peaks.push(Math.max(...counts.values()));
  }
  peaks.sort((a, b) => a - b);
  const at = (p: number) => peaks[Math.min(peaks.length - 1, Math.ceil(p * peaks.length) - 1)] ?? 0;
  return { p50: at(0.5), p999: at(0.999), max: peaks.at(-1) ?? 0 };
}

/** The curve as text: one row per second, ten 100 ms buckets each, and a bar of the second's total. */
function curveText(m: Measured): string {
  const counts = buckets(m.attempts);
  const rows: string[] = [];
  for (let s = 0; s * 10 < counts.length; s++) {
    const row = counts.slice(s * 10, s * 10 + 10);
    const total = row.reduce((a, b) => a + b, 0);
    const marks = [m.readyAtMs >= s * 1000 && m.readyAtMs < (s + 1) * 1000 ? " ← gateway listening" : ""].join("");
    rows.push(`${String(s).padStart(3)} s | ${row.map((c) => String(c).padStart(3)).join(" ")} | ${"█".repeat(Math.ceil(total / 5))} ${total}${marks}`);
  }
  return rows.join("\n");
}

function report(results: Measured[], pgVersion: string): void {
  const table = [
    "| scenario | agents | attempts | busiest 100 ms | model: busiest 100 ms p50 / p99.9 | gateway listening after | all reconnected after |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  const curves: string[] = [];
  for (const m of results) {
    const peak = Math.max(...buckets(m.attempts));
    const model = m.scenario.id === "graceful" ? undefined : modelPeak(m.agents, m.readyAtMs, m.scenario.jitter);
    table.push(
      `| ${m.scenario.title} | ${m.agents} | ${m.attempts.length} | **${peak}** | ${model ? `${model.p50} / ${model.p999}` : "– (server-jittered)"} | ${(m.readyAtMs / 1000).toFixed(1)} s | ${(m.allBackAtMs / 1000).toFixed(1)} s |`,
    );
    curves.push(`${m.scenario.title}: attempts per 100 ms bucket after the restart began (row = 1 s)\n\n\`\`\`\n${curveText(m)}\n\`\`\``);
    if (model && m.scenario.jitter) {
      const verdict = peak <= model.p999 ? "within" : "ABOVE";
      console.log(`${m.scenario.id}: busiest bucket ${peak}, ${verdict} the model's p99.9 of ${model.p999} (p50 ${model.p50})`);
    }
  }
  const intro = [
    `${AGENTS} agent supervisors (agent/lib/supervisor.ts; one HTTP/2 connection each, in one process) hold ControlStreams to one gateway process; the gateway is restarted on the same 127.0.0.1 port and every reconnect attempt (one pass of the supervisor's loop) is counted per 100 ms bucket from the moment the restart began.`,
    `Backoff: full jitter, window [100 ms, min(30 s, 1 s × 2^n)], reset only after 30 s of healthy connection. The model column simulates the same policy ${MODEL_RUNS}× with the measured time until the gateway listened: a measured peak at or below its p99.9 is what the backoff allows. The baseline is the same fleet with the jitter switched off (every wait at the top of its window).`,
    "Run: `npx tsx bench/reconnect-storm.ts` (BENCH_AGENTS, BENCH_DOWN_MS, BENCH_DRAIN_SPREAD_MS).",
  ].join("\n\n");
  const run = [
    `### ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`,
    "",
    machineFacts({ postgres: pgVersion, "crash downtime": `${DOWN_MS} ms plus gateway start`, command: `\`${commandLine()}\`` }),
    "",
    ...table,
    "",
    ...curves.flatMap((c) => [c, ""]),
  ].join("\n");
  console.log(`\n${table.join("\n")}`);
  if (process.env.BENCH_NO_WRITE) return;
  writeSection("## Agent reconnect after gateway restart", intro, run, 3);
  console.log("\nwritten to bench/RESULTS.md");
}

async function waitUntil(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  const n = raw ? Number(raw) : fallback;
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer`);
  return n;
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
