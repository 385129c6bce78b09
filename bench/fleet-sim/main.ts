/**
 * fleet-sim: N simulated agents speaking the real protocol end to end against a real gateway
 * process on real PostgreSQL, spread over several worker processes (bench/fleet-sim/worker.ts),
 * each worker multiplexing its agents' calls and ControlStreams over a few HTTP/2 connections.
 *
 *   npx tsx bench/fleet-sim/main.ts --agents 10000 --scenario steady,broadcast,revoke-one,rollout,reconnect-storm
 *   npm run bench -- fleet-sim           # the default set below, N = 2,000
 *
 * Every agent: an ed25519 identity (made once, cached in bench/.cache/fleet-sim/), Register with
 * an enrollment token that requires approval, approval through the admin API (with the
 * verification code the agent printed), BeginAuthHandshake + CompleteAuthHandshake, one
 * ControlStream (hello, acks every command, pongs, GoAway reasons honoured), heartbeats and
 * telemetry uploads on the worker's shared timer, and reconnects for ever (full-jitter backoff,
 * a RESOURCE_EXHAUSTED retry-after or a GoAway reconnect_after as its floor).
 *
 * Scenarios (run in the order given, on the same fleet):
 *   steady           all N connected for --seconds: gateway CPU/RSS, PostgreSQL CPU, call rates
 *   broadcast        revoke an agent with no stream: time until the last of N streams has the PeerRevoked
 *   revoke-one       revoke --revokes streaming agents one by one: time until each is told (GoAway REVOKED)
 *   rollout          three waves across all N: canaries fail → halt; then a rollout with budgets completes
 *   reconnect-storm  SIGKILL the gateway with N streaming, restart it on the same port: time until all stream again
 *
 * Flags: --agents N (2000) --workers W (2) --per-connection S (100) --seconds T (20)
 *   --heartbeat-ms (10000) --upload-ms (30000) --points (10) --revokes (20) --broadcasts (2)
 *   --gateway-workers G (AGW_WORKERS for the gateway, 1) --no-write (print only)
 *   --profile (the gateway under --cpu-prof: top self time per scenario; not with reconnect-storm)
 *   --failing-percent (1) --storm-timeout-s (120)
 * Bounded: every wait has a deadline; workers exit when the coordinator goes. Loopback only.
 */
import { fork } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { durationFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { AgentService } from "../../gen/agentgateway/admin/v1/agents_pb.js";
import { AuditService } from "../../gen/agentgateway/admin/v1/audit_pb.js";
import { EnrollmentTokenService } from "../../gen/agentgateway/admin/v1/enrollment_tokens_pb.js";
import { ReleaseKeyService } from "../../gen/agentgateway/admin/v1/release_keys_pb.js";
import { RolloutService, RolloutState } from "../../gen/agentgateway/admin/v1/rollouts_pb.js";
import { AgentState } from "../../gen/agentgateway/v1/common_pb.js";
import { generateKeyPair } from "../../client/protocol/ed25519.js";
import { signReleaseManifest } from "../../cli/release.js";
import { adminClient } from "../../test/support/admin.js";
import { freePort } from "../../test/support/free-port.js";
import { type BenchGateway, ROOT, spawnGateway } from "../lib/child.js";
import { monotonicMicros, summarizeProfile } from "../lib/cpu-profile.js";
import { ActivitySampler, startPostgres } from "../lib/postgres.js";
import { clusterCpuSeconds, loadAverages, rssKiBOf } from "../lib/proc.js";
import { commandLine, machineFacts, writeSection } from "../lib/results.js";
import { fmt, int, sleep, summarize, table } from "../lib/stats.js";
import { type AgentSpec, type Collected, epochMs, type FromWorker, type ToWorker, type WorkerStats } from "./protocol.js";

const args = parseArgs(process.argv.slice(2));
const N = args.int("agents", 2000);
const WORKERS = args.int("workers", 2);
const PER_CONNECTION = args.int("per-connection", 100);
const SECONDS = args.int("seconds", 20);
const HEARTBEAT_MS = args.int("heartbeat-ms", 10_000);
const UPLOAD_MS = args.int("upload-ms", 30_000);
const POINTS = args.int("points", 10);
const REVOKES = args.int("revokes", 20);
const BROADCASTS = args.int("broadcasts", 2);
const GATEWAY_WORKERS = args.int("gateway-workers", 1);
const FAILING_PERCENT = args.num("failing-percent", 1);
const STORM_TIMEOUT_MS = args.int("storm-timeout-s", 120) * 1000;
const SCENARIOS = args.str("scenario", "steady,broadcast,revoke-one,rollout,reconnect-storm").split(",").filter(Boolean);
const NO_WRITE = args.flag("no-write") || Boolean(process.env.BENCH_NO_WRITE);
/** The gateway under `node --cpu-prof`: top self time per scenario (a SIGKILL writes no profile, so not with reconnect-storm). */
const PROFILE = args.flag("profile");
const CACHE_DIR = join(ROOT, "bench", ".cache", "fleet-sim");
const UNLIMITED = "1000000/s:1000000";
/** Extra agents registered but never connected: one is revoked per broadcast. */
const VICTIMS = BROADCASTS;

const log = (line: string) => console.error(`[fleet-sim ${new Date().toISOString().slice(11, 19)}] ${line}`);

interface Worker {
  id: number;
  agents: AgentSpec[];
  stats: WorkerStats | undefined;
  send(message: ToWorker): void;
  next<T extends FromWorker["type"]>(type: T, timeoutMs: number): Promise<Extract<FromWorker, { type: T }>>;
  onEvent?: (message: FromWorker) => void;
}

async function main(): Promise<void> {
  const postgres = await startPostgres();
  const database = await postgres.createDatabase("agw_fleet_sim");
  const port = await freePort();
  const gatewayEnv: Record<string, string> = {
    AGW_LISTEN: `127.0.0.1:${port}`,
    // All simulated agents come from 127.0.0.1: lift the per-source limits a NAT would need raised.
    AGW_MAX_CONNECTIONS_PER_SOURCE: "0",
    AGW_REGISTER_RATE: UNLIMITED,
    AGW_HANDSHAKE_SOURCE_RATE: UNLIMITED,
    AGW_HEARTBEAT_INTERVAL: `${Math.round(HEARTBEAT_MS / 1000)}s`,
    AGW_SESSION_TTL: "6h",
    AGW_ROLLOUT_VERIFY_INTERVAL: "500ms",
    AGW_WORKERS: String(GATEWAY_WORKERS),
  };
  if (PROFILE && SCENARIOS.includes("reconnect-storm")) throw new Error("--profile cannot profile reconnect-storm (its SIGKILL writes no profile): leave it out");
  let gateway: BenchGateway | undefined = await spawnGateway(database.url, gatewayEnv, PROFILE);
  /** Each scenario's interval on the profile's clock. */
  const windows: Array<{ scenario: string; fromUs: number; toUs: number }> = [];
  const workers: Worker[] = [];
  const sections: string[] = [];
  const startLoad = loadAverages();
  try {
    log(`gateway ${gateway.url} (pid ${gateway.pid}); PostgreSQL ${postgres.version}; N=${N} over ${WORKERS} workers; scenarios ${SCENARIOS.join(", ")}`);
    const identities = loadIdentities(N + VICTIMS);
    const failing = new Set<number>();
    const failingCount = Math.round((N * FAILING_PERCENT) / 100);
    while (failing.size < failingCount) failing.add(Math.floor(Math.random() * N));
    // Worker w gets agents w, w+W, … (and the victims go to worker 0, never started).
    for (let w = 0; w < WORKERS; w++) {
      const specs = identities.slice(0, N).filter((s) => s.index % WORKERS === w);
      workers.push(await startWorker(w, gateway.url, specs, [...failing]));
    }
    const victims = await startWorker(WORKERS, gateway.url, identities.slice(N), []);

    // Enrollment: one token per worker (≤ 10,000 uses each), approval required.
    const tokens = adminClient(EnrollmentTokenService, gateway.url, gateway.adminKey);
    const agentsApi = adminClient(AgentService, gateway.url, gateway.adminKey);
    let t0 = performance.now();
    const registered = await Promise.all(
      [...workers, victims].map(async (w) => {
        // Labels: rollouts target the simulated fleet, not the victims that never connect.
        const labels = { fleet: w === victims ? "victim" : "sim" };
        const { secret } = await tokens.createEnrollmentToken({ maxUses: Math.max(1, w.agents.length), requiresApproval: true, ttl: durationFromMs(3_600_000), labels });
        w.send({ type: "register", token: secret, concurrency: 16 });
        return (await w.next("registered", 600_000)).agents;
      }),
    ).then((lists) => lists.flat());
    const registerS = (performance.now() - t0) / 1000;
    log(`registered ${registered.length} agents in ${fmt(registerS, 1)} s`);
    const agentIds = new Map(registered.map((r) => [r.index, r.agentId]));
    t0 = performance.now();
    await parallel(registered, 16, async (r) => {
      if (r.state !== AgentState.PENDING_APPROVAL) throw new Error(`agent ${r.index} registered as ${AgentState[r.state]}, expected PENDING_APPROVAL`);
      await agentsApi.approveAgent({ id: r.agentId, expectedVerificationCode: r.verificationCode });
    });
    const approveS = (performance.now() - t0) / 1000;
    log(`approved ${registered.length} agents in ${fmt(approveS, 1)} s`);

    t0 = performance.now();
    for (const w of workers) w.send({ type: "start" });
    let nextProgress = Date.now() + 10_000;
    const connectedMs = await waitFor(() => {
      if (Date.now() > nextProgress) {
        nextProgress = Date.now() + 10_000;
        const t = totals(workers);
        log(`connecting: ${t.streaming} streaming, ${t.handshakes} handshakes, ${t.attempts} attempts, errors ${JSON.stringify(t.errors)}`);
      }
      return sum(workers, (s) => s.streaming) >= N;
    }, 600_000);
    const connectS = (performance.now() - t0) / 1000;
    log(`${sum(workers, (s) => s.streaming)} / ${N} streaming after ${fmt(connectS, 1)} s`);
    if (connectedMs === undefined) throw new Error("not every agent got its stream");
    sections.push(
      table(
        ["phase", "agents", "seconds", "per second"],
        [
          ["Register (token requires approval)", int(registered.length), fmt(registerS, 1), int(registered.length / registerS)],
          ["ApproveAgent (admin API, expected verification code)", int(registered.length), fmt(approveS, 1), int(registered.length / approveS)],
          ["handshake + ControlStream open (all N streaming)", int(N), fmt(connectS, 1), int(N / connectS)],
        ],
      ),
    );

    let streamingIndexes = [...Array(N).keys()];
    for (const scenario of SCENARIOS) {
      log(`scenario ${scenario}`);
      const sampler = new ActivitySampler(postgres.adminUrl, database.name, 100);
      await sampler.start();
      const fromUs = monotonicMicros();
      if (scenario === "steady") sections.push(await steady(gateway, postgres.postmasterPid, workers));
      else if (scenario === "broadcast") sections.push(await broadcast(gateway, workers, identities.slice(N).map((s) => agentIds.get(s.index) ?? "")));
      else if (scenario === "revoke-one") {
        const picked = streamingIndexes.filter((i) => !failing.has(i)).slice(0, REVOKES);
        streamingIndexes = streamingIndexes.filter((i) => !picked.includes(i));
        sections.push(await revokeOne(gateway, workers, picked.map((i) => ({ index: i, agentId: agentIds.get(i) ?? "" }))));
      } else if (scenario === "rollout") sections.push(await rollout(gateway, workers, streamingIndexes.length, failing));
      else if (scenario === "reconnect-storm") {
        const result = await reconnectStorm(gateway, database.url, gatewayEnv, workers, postgres.postmasterPid);
        gateway = result.gateway;
        sections.push(result.section);
      } else throw new Error(`unknown scenario ${scenario}`);
      windows.push({ scenario, fromUs, toUs: monotonicMicros() });
      const activity = await sampler.stop();
      const top = activity.rows.slice(0, 6).map((r) => [r.what.replace(/\|/g, "/"), `${fmt(r.share * 100, 1)} %`]);
      if (top.length > 0) sections.push(`PostgreSQL during ${scenario} (pg_stat_activity every 100 ms, ${activity.samples} samples; share of busy backend observations):\n\n${table(["state · wait · query", "share"], top)}`);
    }

    if (PROFILE && gateway) {
      const profile = await gateway.stop();
      gateway = undefined;
      if (profile) for (const w of windows) sections.push(profileSection(profile, w));
    }
    const report = [
      `### Run ${new Date().toISOString()}`,
      "",
      machineFacts({
        "load averages when the run ended": loadAverages(),
        "load averages at start": startLoad,
        postgres: `${postgres.version}, ${postgres.description}`,
        fleet: `${int(N)} agents in ${WORKERS} worker processes, ${PER_CONNECTION} per HTTP/2 connection; heartbeat every ${HEARTBEAT_MS / 1000} s, ${POINTS} points every ${UPLOAD_MS / 1000} s; ${failing.size} failing canaries`,
        gateway: `${GATEWAY_WORKERS} worker process(es), 127.0.0.1`,
        command: `\`${commandLine()}\``,
      }),
      "",
      ...sections.map((s) => `${s}\n`),
    ].join("\n");
    console.log(report);
    if (!NO_WRITE) {
      writeSection("## Fleet simulator (bench/fleet-sim)", INTRO, report, 6);
      log("wrote bench/RESULTS.md");
    }
  } finally {
    for (const w of workers) w.send({ type: "stop" });
    await gateway?.stop();
    await database.drop().catch(() => {});
    await postgres.stop();
  }
}

/** The gateway's top self time during one scenario. */
function profileSection(path: string, w: { scenario: string; fromUs: number; toUs: number }): string {
  const s = summarizeProfile(path, w, 15);
  const seconds = (w.toUs - w.fromUs) / 1e6;
  return [
    `Gateway CPU profile during ${w.scenario} (\`--profile\`, ${fmt(seconds, 1)} s, ${int(s.totalMs)} ms busy, ${int(s.idleMs)} ms idle):`,
    "",
    table(["area (self time)", "ms", "share"], s.areas.slice(0, 10).map((a) => [a.name, int(a.ms), `${fmt(a.share * 100)} %`])),
    "",
    table(["function (self time)", "where", "ms", "share"], s.functions.slice(0, 15).map((f) => [f.name, f.where, int(f.ms), `${fmt(f.share * 100)} %`])),
  ].join("\n");
}

const INTRO = `N simulated agents speaking the real protocol end to end (bench/fleet-sim/main.ts; scenarios and
flags in its header): Register with an approval-requiring enrollment token, ApproveAgent through
the admin API, the handshake, one ControlStream each that acks its commands, heartbeats and
telemetry uploads, reconnecting for ever with full-jitter backoff. Workers are separate processes
multiplexing their agents over shared HTTP/2 connections (raw node:http2, hand-framed Connect).
The gateway (its own process), PostgreSQL and the workers share the machine's cores.`;

// ——— scenarios ———

async function steady(gateway: BenchGateway, pgPid: number | undefined, workers: Worker[]): Promise<string> {
  const before = totals(workers);
  const gw0 = gatewayCpu(gateway);
  const pg0 = pgPid ? clusterCpuSeconds(pgPid) : Number.NaN;
  const t0 = performance.now();
  let peakRss = 0;
  const deadline = Date.now() + SECONDS * 1000;
  while (Date.now() < deadline) {
    await sleep(500);
    peakRss = Math.max(peakRss, gatewayRssKiB(gateway));
  }
  const s = (performance.now() - t0) / 1000;
  const after = totals(workers);
  const gwCpu = gatewayCpu(gateway) - gw0;
  const pgCpu = pgPid ? clusterCpuSeconds(pgPid) - pg0 : Number.NaN;
  const rate = (k: keyof WorkerStats) => ((after[k] as number) - (before[k] as number)) / s;
  const rows = [
    ["agents streaming at the end", int(sum(workers, (x) => x.streaming)), ""],
    ["heartbeats/s (errors)", `${int(rate("heartbeats"))} (${int(after.heartbeatErrors - before.heartbeatErrors)})`, ""],
    ["telemetry points/s (upload errors)", `${int(rate("pointsUploaded"))} (${int(after.uploadErrors - before.uploadErrors)})`, ""],
    ["gateway CPU (share of one core)", `${fmt((gwCpu / s) * 100, 1)} %`, `${fmt((gwCpu * 1e6) / s / N, 1)} µs/s per agent`],
    ["PostgreSQL CPU (share of one core)", Number.isNaN(pgCpu) ? "–" : `${fmt((pgCpu / s) * 100, 1)} %`, ""],
    ["workers' CPU (share of one core)", `${fmt(((after.cpuUs - before.cpuUs) / 1e6 / s) * 100, 1)} %`, ""],
    ["gateway VmRSS now / peak", `${fmt(gatewayRssKiB(gateway) / 1024, 0)} / ${fmt(peakRss / 1024, 0)} MiB`, `${fmt(gatewayRssKiB(gateway) / N, 1)} KiB per agent`],
    ["stream errors / go-aways", JSON.stringify(after.errors), JSON.stringify(after.goAways)],
  ];
  return `#### steady (${SECONDS} s, ${int(N)} agents)\n\n${table(["figure", "value", "per agent"], rows, () => false)}`;
}

async function broadcast(gateway: BenchGateway, workers: Worker[], victimIds: string[]): Promise<string> {
  const agents = adminClient(AgentService, gateway.url, gateway.adminKey);
  const rows: string[][] = [];
  for (let b = 0; b < BROADCASTS; b++) {
    const victim = victimIds[b];
    if (!victim) break;
    for (const w of workers) w.send({ type: "reset" });
    await sleep(200);
    const expected = sum(workers, (s) => s.streaming);
    const before = sum(workers, (s) => s.peerRevoked);
    const t0 = epochMs();
    await agents.revokeAgent({ id: victim, reason: `fleet-sim broadcast ${b + 1}` });
    const callMs = epochMs() - t0;
    await waitFor(() => sum(workers, (s) => s.peerRevoked) - before >= expected, 120_000);
    const collected = await collectAll(workers);
    const latencies = collected.flatMap((c) => c.peerRevokedAt.map(([, t]) => t - t0));
    const l = summarize(latencies);
    rows.push([`#${b + 1}`, int(expected), int(latencies.length), fmt(callMs, 0), fmt(l.p50, 0), fmt(l.p99, 0), `**${fmt(l.max, 0)}**`]);
  }
  return `#### broadcast: revoke an agent with no stream; PeerRevoked reaches every open stream\n\n${table(["broadcast", "streams", "received", "RevokeAgent call ms", "p50 ms", "p99 ms", "last ms"], rows)}`;
}

async function revokeOne(gateway: BenchGateway, workers: Worker[], targets: Array<{ index: number; agentId: string }>): Promise<string> {
  const agents = adminClient(AgentService, gateway.url, gateway.adminKey);
  const latencies: number[] = [];
  const calls: number[] = [];
  for (const target of targets) {
    for (const w of workers) w.send({ type: "reset" });
    await sleep(100);
    const peers = sum(workers, (s) => s.streaming) - 1;
    const noticesBefore = sum(workers, (s) => s.peerRevoked);
    const t0 = epochMs();
    await agents.revokeAgent({ id: target.agentId, reason: "fleet-sim revoke-one" });
    calls.push(epochMs() - t0);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const collected = await collectAll(workers);
      const hit = collected.flatMap((c) => c.revokedAt).find(([i]) => i === target.index);
      if (hit) {
        latencies.push(hit[1] - t0);
        break;
      }
      if (Date.now() > deadline) break;
      await sleep(20);
    }
    // Let the peer notice of this revocation reach every other stream (and its acks come back)
    // before the next one: each revocation is measured with 10,000 streams open, not in the
    // middle of the previous one's broadcast.
    await waitFor(() => sum(workers, (s) => s.peerRevoked) - noticesBefore >= peers, 30_000);
    await sleep(500);
  }
  const l = summarize(latencies);
  const c = summarize(calls);
  return `#### revoke-one: ${targets.length} targeted revocations with ${int(sum(workers, (s) => s.streaming) + targets.length)} streams open\n\nTime from the start of RevokeAgent until the revoked agent has its GoAway REVOKED (the same revocation also sends PeerRevoked to every other stream); and how long the RevokeAgent call itself took (its transaction and the bus notifications).\n\n${table(
    ["revocations", "told", "p50 ms", "p99 ms", "max ms", "RevokeAgent call p50 ms", "call p99 ms"],
    [[int(targets.length), int(latencies.length), fmt(l.p50, 0), `**${fmt(l.p99, 0)}**`, fmt(l.max, 0), fmt(c.p50, 0), fmt(c.p99, 0)]],
  )}`;
}

async function rollout(gateway: BenchGateway, workers: Worker[], fleet: number, failing: Set<number>): Promise<string> {
  const releaseKey = generateKeyPair();
  await adminClient(ReleaseKeyService, gateway.url, gateway.adminKey).registerReleaseKey({ name: "fleet-sim", publicKey: releaseKey.publicKey });
  const rollouts = adminClient(RolloutService, gateway.url, gateway.adminKey);
  const manifest = (version: string) =>
    signReleaseManifest({ version, artifactUrl: `https://releases.example.invalid/agent-${version}.tgz`, artifactSha256: new Uint8Array(32).fill(7), artifactSize: 1234n, notes: "" }, releaseKey.privateKey);
  const rows: string[][] = [];
  const run = async (title: string, version: string, budgetFor: (waveSize: number) => number) => {
    const waves = [
      { name: "canary", cumulativePercent: 5 },
      { name: "early", cumulativePercent: 25 },
      { name: "rest", cumulativePercent: 100 },
    ].map((w, i, all) => {
      const size = Math.ceil((fleet * (w.cumulativePercent - (all[i - 1]?.cumulativePercent ?? 0))) / 100);
      return { ...w, failureBudget: budgetFor(size), verifyWindow: durationFromMs(120_000) };
    });
    const directivesBefore = sum(workers, (s) => s.rolloutDirectives);
    for (const w of workers) w.send({ type: "reset" });
    const t0 = performance.now();
    const { rollout: created } = await rollouts.createRollout({ spec: { manifest: manifest(version), waves, autoAdvanceAfter: durationFromMs(1000), targetSelector: { fleet: "sim" } } });
    if (!created) throw new Error("no rollout");
    await rollouts.startRollout({ id: created.id });
    let state = RolloutState.RUNNING;
    let haltedAt = Number.NaN;
    let current = 0;
    let nextLog = 0;
    const deadline = Date.now() + 300_000;
    while (Date.now() < deadline) {
      const { rollout: r } = await rollouts.getRollout({ id: created.id });
      state = r?.state ?? state;
      if (r && r.currentWave !== current) log(`rollout ${version}: wave ${r.currentWave + 1} released (${RolloutState[state]})`);
      current = r?.currentWave ?? current;
      if (r && Date.now() > nextLog) {
        nextLog = Date.now() + 5000;
        log(`rollout ${version}: directives ${sum(workers, (s) => s.rolloutDirectives) - directivesBefore} errors ${JSON.stringify(totals(workers).errors)} ${RolloutState[state]} ${r.waves.map((w) => `${w.name} ${w.succeeded}/${w.memberIds.length} ok ${w.failed} failed`).join(", ")}`);
      }
      if (state === RolloutState.HALTED) {
        haltedAt = performance.now();
        break;
      }
      if (state === RolloutState.COMPLETED || state === RolloutState.CANCELLED) break;
      await sleep(200);
    }
    const doneS = (performance.now() - t0) / 1000;
    let lateDirectives = 0;
    if (!Number.isNaN(haltedAt)) {
      // Directives arriving more than 1 s after the halt committed (its audit record's time, on
      // this machine's clock like the workers' receipt times), counted over the 3 s after it.
      const { events } = await adminClient(AuditService, gateway.url, gateway.adminKey).listAuditEvents({ action: "rollout.halted", target: `rollout:${created.id}` });
      const haltMs = events[0]?.createdAt ? timestampMs(events[0].createdAt) : epochMs();
      await sleep(Math.max(0, haltMs + 3000 - epochMs()));
      const arrivals = (await collectAll(workers)).flatMap((c) => c.rolloutDirectiveAt);
      lateDirectives = arrivals.filter((t) => t > haltMs + 1000).length;
      await rollouts.cancelRollout({ id: created.id, reason: "fleet-sim: halted as expected" }).catch(() => {});
    }
    const directives = sum(workers, (s) => s.rolloutDirectives) - directivesBefore;
    rows.push([title, RolloutState[state] ?? String(state), String(current + 1), int(directives), fmt(doneS, 1), Number.isNaN(haltedAt) ? "–" : int(lateDirectives)]);
  };
  const failingShare = failing.size / Math.max(1, N);
  await run(`failing canaries (${failing.size} agents fail every directive; budget 0)`, "2.0.0", () => 0);
  await run("budgets cover the failing agents", "2.1.0", (size) => Math.ceil(size * failingShare * 3) + 2);
  return `#### rollout: three waves (5 % / 25 % / 100 %) across ${int(fleet)} agents, auto-advance after 1 s\n\n${table(
    ["rollout", "end state", "waves released", "directives delivered", "seconds", "directives arriving > 1 s after the halt"],
    rows,
    (i) => i >= 2,
  )}`;
}

async function reconnectStorm(
  gateway: BenchGateway,
  databaseUrl: string,
  env: Record<string, string>,
  workers: Worker[],
  pgPid: number | undefined,
): Promise<{ gateway: BenchGateway; section: string }> {
  const fleet = sum(workers, (s) => s.streaming);
  const before = totals(workers);
  for (const w of workers) w.send({ type: "reset" });
  const t0 = epochMs();
  gateway.child.kill("SIGKILL");
  await gateway.stop();
  const pg0 = pgPid ? clusterCpuSeconds(pgPid) : Number.NaN;
  const next = await spawnGateway(databaseUrl, env);
  const listeningMs = epochMs() - t0;
  log(`gateway restarted (pid ${next.pid}) after ${fmt(listeningMs, 0)} ms`);
  const gw0 = gatewayCpu(next);
  let peakRss = 0;
  const deadline = Date.now() + STORM_TIMEOUT_MS;
  let allBackMs = Number.NaN;
  while (Date.now() < deadline) {
    await sleep(250);
    peakRss = Math.max(peakRss, gatewayRssKiB(next));
    const collected = await collectAll(workers);
    const back = collected.reduce((n, c) => n + c.streamingAt.length, 0);
    if (back >= fleet && sum(workers, (s) => s.streaming) >= fleet) {
      allBackMs = Math.max(...collected.flatMap((c) => c.streamingAt.map(([, t]) => t - t0)));
      break;
    }
  }
  const after = totals(workers);
  const gwCpu = gatewayCpu(next) - gw0;
  const pgCpu = pgPid ? clusterCpuSeconds(pgPid) - pg0 : Number.NaN;
  const rows = [
    [
      int(fleet),
      fmt(listeningMs / 1000, 1),
      Number.isNaN(allBackMs) ? `not all within ${STORM_TIMEOUT_MS / 1000} s (${int(sum(workers, (s) => s.streaming))})` : `**${fmt(allBackMs / 1000, 1)}**`,
      int(after.attempts - before.attempts),
      int(after.handshakes - before.handshakes),
      int(after.resourceExhausted - before.resourceExhausted),
      int(sum(workers, (s) => s.stopped)),
      fmt(peakRss / 1024, 0),
      fmt(gwCpu, 1),
      Number.isNaN(pgCpu) ? "–" : fmt(pgCpu, 1),
    ],
  ];
  return {
    gateway: next,
    section: `#### reconnect-storm: SIGKILL with every agent streaming, restart on the same port\n\n${table(
      ["agents", "gateway listening after s", "all streaming again after s", "attempts", "handshakes", "RESOURCE_EXHAUSTED", "agents that gave up", "gateway peak VmRSS MiB", "gateway CPU s", "PostgreSQL CPU s"],
      rows,
    )}`,
  };
}

// ——— workers and helpers ———

function startWorker(id: number, url: string, specs: AgentSpec[], failing: number[]): Promise<Worker> {
  const child = fork(join(ROOT, "bench", "fleet-sim", "worker.ts"), [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const waiters: Array<{ type: string; resolve: (m: FromWorker) => void }> = [];
  const worker: Worker = {
    id,
    agents: specs,
    stats: undefined,
    send: (m) => {
      if (child.connected) child.send(m);
    },
    next: (type, timeoutMs) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`worker ${id}: no ${type} within ${timeoutMs} ms`)), timeoutMs);
        waiters.push({
          type,
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m as never);
          },
        });
      }),
  };
  child.on("message", (raw) => {
    const m = raw as FromWorker;
    if (m.type === "stats" || m.type === "collected") worker.stats = m.stats;
    if (m.type === "fatal") log(`worker ${id} failed: ${m.message}`);
    const i = waiters.findIndex((w) => w.type === m.type);
    if (i !== -1) waiters.splice(i, 1)[0]?.resolve(m);
    worker.onEvent?.(m);
  });
  child.once("exit", (code) => {
    if (code) log(`worker ${id} exited with ${code}`);
  });
  worker.send({
    type: "init",
    config: {
      url,
      agents: specs,
      perConnection: PER_CONNECTION,
      heartbeatMs: HEARTBEAT_MS,
      uploadMs: UPLOAD_MS,
      pointsPerUpload: POINTS,
      failingIndexes: failing,
      openConcurrency: 64,
      agentVersion: "1.0.0",
    },
  });
  return worker.next("ready", 60_000).then(() => worker);
}

async function collectAll(workers: Worker[]): Promise<Collected[]> {
  return Promise.all(
    workers.map(async (w) => {
      w.send({ type: "collect" });
      return (await w.next("collected", 30_000)).collected;
    }),
  );
}

function sum(workers: Worker[], f: (s: WorkerStats) => number): number {
  return workers.reduce((n, w) => n + (w.stats ? f(w.stats) : 0), 0);
}

function totals(workers: Worker[]): WorkerStats {
  const out = { ...(workers[0]?.stats as WorkerStats) };
  for (const k of Object.keys(out) as Array<keyof WorkerStats>) {
    if (typeof out[k] === "number") (out[k] as number) = sum(workers, (s) => s[k] as number);
  }
  const merge = (pick: (s: WorkerStats) => Record<string, number>) => {
    const m: Record<string, number> = {};
    for (const w of workers) for (const [k, v] of Object.entries(w.stats ? pick(w.stats) : {})) m[k] = (m[k] ?? 0) + v;
    return m;
  };
  out.errors = merge((s) => s.errors);
  out.goAways = merge((s) => s.goAways);
  return out;
}

/** Resolves with the elapsed ms once `ok()` holds, or undefined at the deadline. */
async function waitFor(ok: () => boolean, timeoutMs: number): Promise<number | undefined> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    if (ok()) return performance.now() - t0;
    await sleep(50);
  }
  return ok() ? performance.now() - t0 : undefined;
}

async function parallel<T>(items: T[], concurrency: number, f: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const item = items[next++] as T;
        for (let attempt = 0; ; attempt++) {
          try {
            await f(item);
            break;
          } catch (err) {
            if (attempt >= 5 || (err instanceof ConnectError && err.code !== Code.Unavailable && err.code !== Code.ResourceExhausted)) throw err;
            await sleep(200);
          }
        }
      }
    }),
  );
}

/** The gateway's CPU seconds, its worker processes' included. */
function gatewayCpu(gateway: BenchGateway): number {
  return processTree(gateway.pid).reduce((n, pid) => n + cpuOf(pid), 0);
}

function gatewayRssKiB(gateway: BenchGateway): number {
  return processTree(gateway.pid).reduce((n, pid) => n + (rssKiBOfSafe(pid) || 0), 0);
}

function processTree(root: number): number[] {
  const out = [root];
  try {
    const children = readFileSync(`/proc/${root}/task/${root}/children`, "utf8").trim();
    for (const c of children ? children.split(/\s+/) : []) out.push(...processTree(Number(c)));
  } catch {
    // Gone.
  }
  return out;
}

function cpuOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

function rssKiBOfSafe(pid: number): number {
  try {
    return rssKiBOf(pid);
  } catch {
    return 0;
  }
}

/** ed25519 identities, made once and kept in bench/.cache/fleet-sim/identities.json. */
function loadIdentities(n: number): AgentSpec[] {
  const file = join(CACHE_DIR, "identities.json");
  let keys: Array<{ privateKey: string; publicKey: string }> = [];
  if (existsSync(file)) keys = JSON.parse(readFileSync(file, "utf8")) as typeof keys;
  if (keys.length < n) {
    const t0 = performance.now();
    while (keys.length < n) {
      const { privateKey, publicKey } = generateKeyPairSync("ed25519");
      const d = privateKey.export({ format: "jwk" }).d ?? "";
      const x = publicKey.export({ format: "jwk" }).x ?? "";
      keys.push({ privateKey: Buffer.from(d, "base64url").toString("hex"), publicKey: Buffer.from(x, "base64url").toString("hex") });
    }
    mkdirSync(CACHE_DIR, { recursive: true });
    writeFileSync(file, JSON.stringify(keys));
    log(`made ${n} identities in ${fmt((performance.now() - t0) / 1000, 1)} s (cached in ${file})`);
  }
  return keys.slice(0, n).map((k, index) => ({ index, ...k }));
}

function parseArgs(argv: string[]) {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (!a.startsWith("--")) continue;
    const [k, v] = a.slice(2).split("=", 2) as [string, string | undefined];
    if (v !== undefined) values.set(k, v);
    else if (argv[i + 1] && !argv[i + 1]?.startsWith("--")) values.set(k, argv[++i] ?? "");
    else values.set(k, "true");
  }
  const num = (k: string, d: number) => {
    const v = values.get(k);
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${k} must be a number`);
    return n;
  };
  return { num, int: (k: string, d: number) => Math.round(num(k, d)), str: (k: string, d: string) => values.get(k) ?? d, flag: (k: string) => values.has(k) };
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
