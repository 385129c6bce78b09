/**
 * One fleet-sim worker process: many simulated agents speaking the real agent protocol over a
 * few shared HTTP/2 connections (raw node:http2, hand-framed Connect, binary protobuf; see
 * bench/lib/lean-client.ts). Each agent registers (once; ids are cached by the coordinator),
 * handshakes, keeps one ControlStream open (hello, acks every command, answers pings, follows
 * GoAway reasons as docs/protocol.md says), heartbeats and uploads telemetry on one shared
 * timer, and reconnects for ever with full-jitter backoff, a server retry hint as its floor.
 * Driven by the coordinator over IPC (bench/fleet-sim/protocol.ts). Loopback only.
 */
import { createPrivateKey, type KeyObject, sign as nodeSign } from "node:crypto";
import type http2 from "node:http2";
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { durationFromMs, timestampNow } from "@bufbuild/protobuf/wkt";
import {
  AckStatus,
  ControlStreamRequestSchema,
  type ControlStreamResponse,
  ControlStreamResponseSchema,
  GoAwayReason,
  RolloutStage,
} from "../../gen/agentgateway/v1/control_pb.js";
import {
  BeginAuthHandshakeRequestSchema,
  BeginAuthHandshakeResponseSchema,
  CompleteAuthHandshakeRequestSchema,
  CompleteAuthHandshakeResponseSchema,
  RegisterRequestSchema,
  RegisterResponseSchema,
} from "../../gen/agentgateway/v1/gateway_pb.js";
import { AgentStatus, UploadHeartbeatRequestSchema, UploadTelemetryRequestSchema } from "../../gen/agentgateway/v1/ingest_pb.js";
import { ReleaseManifestSchema } from "../../gen/agentgateway/v1/release_pb.js";
import { authTranscript, registerTranscript } from "../../client/protocol/transcript.js";
import { type BidiStream, bidi, connectSession, LeanConnectError, unaryBytes } from "../lib/lean-client.js";
import { type AgentSpec, type Collected, epochMs, MAX_DIRECTIVE_TIMES, type FromWorker, STATS_EVERY_MS, type ToWorker, type WorkerConfig, type WorkerStats } from "./protocol.js";

const SERVICE = "/agentgateway.v1.AgentGatewayService";
const PKCS8_ED25519 = Buffer.from("302e020100300506032b657004220420", "hex");
/** Handshake again this long before the session expires. */
const REFRESH_BEFORE_MS = 60_000;
const BACKOFF = { initialMs: 1000, maxMs: 30_000, floorMs: 100 };
/** The shared timer of the worker: heartbeats, uploads, due reconnects. */
const TICK_MS = 50;
/** Unary calls (heartbeats, uploads) in flight at once per worker; more are skipped, not queued. */
const MAX_INFLIGHT_UNARY = 512;

type Phase = "idle" | "waiting" | "opening" | "streaming" | "revoked" | "stopped";

class SimAgent {
  phase: Phase = "idle";
  token: string | undefined;
  tokenExpiresAt = 0;
  stream: BidiStream<typeof ControlStreamRequestSchema> | undefined;
  lastApplied = 0n;
  failures = 0;
  dueAt = 0;
  goAway: { reason: GoAwayReason; afterMs: number } | undefined;
  peerRevokedAt = Number.NaN;
  revokedAt = Number.NaN;
  streamingAt = Number.NaN;
  uploadSeq = 0;
  readonly key: KeyObject;
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;

  constructor(
    readonly index: number,
    readonly slot: number,
    spec: AgentSpec,
    public agentId: string,
    public version: string,
    readonly failing: boolean,
  ) {
    this.privateKey = Buffer.from(spec.privateKey, "hex");
    this.publicKey = Buffer.from(spec.publicKey, "hex");
    this.key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, this.privateKey]), format: "der", type: "pkcs8" });
  }
}

/** HTTP/2 connections shared by agents (agent slot / perConnection), re-made when they die. */
class Connections {
  private readonly sessions = new Map<number, http2.ClientHttp2Session>();
  private readonly pending = new Map<number, Promise<http2.ClientHttp2Session>>();

  constructor(private readonly url: string) {}

  get(k: number): Promise<http2.ClientHttp2Session> {
    const s = this.sessions.get(k);
    if (s && !s.closed && !s.destroyed) return Promise.resolve(s);
    let p = this.pending.get(k);
    if (!p) {
      p = connectSession(this.url)
        .then((session) => {
          this.sessions.set(k, session);
          const forget = () => {
            if (this.sessions.get(k) === session) this.sessions.delete(k);
          };
          session.once("close", forget);
          session.once("goaway", forget);
          return session;
        })
        .finally(() => {
          this.pending.delete(k);
        });
      this.pending.set(k, p);
    }
    return p;
  }

  closeAll(): void {
    for (const s of this.sessions.values()) s.destroy();
  }
}

const stats: WorkerStats = {
  agents: 0,
  streaming: 0,
  revoked: 0,
  stopped: 0,
  handshakes: 0,
  handshakeErrors: 0,
  streamOpens: 0,
  attempts: 0,
  resourceExhausted: 0,
  errors: {},
  heartbeats: 0,
  heartbeatErrors: 0,
  uploads: 0,
  pointsUploaded: 0,
  uploadErrors: 0,
  commands: 0,
  peerRevoked: 0,
  rolloutDirectives: 0,
  acks: 0,
  goAways: {},
  cpuUs: 0,
  rssBytes: 0,
};

let config: WorkerConfig;
let connections: Connections;
let agents: SimAgent[] = [];
let running = false;
let opening = 0;
let inflightUnary = 0;
const runQueue: SimAgent[] = [];
let heartbeatCursor = 0;
let uploadCursor = 0;
let ticker: NodeJS.Timeout | undefined;
let statsTimer: NodeJS.Timeout | undefined;
/** When each rollout directive arrived since the last reset (what "after the halt" is measured on). */
let rolloutDirectiveAt: number[] = [];
const startedAt = Date.now();

function send(message: FromWorker): void {
  process.send?.(message);
}

function count(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

function errorKey(err: unknown): string {
  if (err instanceof LeanConnectError) return err.code || `http_${err.status}`;
  const code = (err as { code?: string }).code;
  return code ?? (err instanceof Error ? err.message.slice(0, 40) : "error");
}

function snapshot(): WorkerStats {
  let streaming = 0;
  let revoked = 0;
  let stopped = 0;
  for (const a of agents) {
    if (a.phase === "streaming") streaming++;
    else if (a.phase === "revoked") revoked++;
    else if (a.phase === "stopped") stopped++;
  }
  const cpu = process.cpuUsage();
  return { ...stats, agents: agents.length, streaming, revoked, stopped, cpuUs: cpu.user + cpu.system, rssBytes: process.memoryUsage.rss() };
}

/** Full-jitter backoff: [floor, min(max, initial·2^n)] on top of the server's hint. */
function backoffMs(agent: SimAgent, hintMs = 0): number {
  const ceiling = Math.min(BACKOFF.maxMs, BACKOFF.initialMs * 2 ** Math.min(agent.failures, 30));
  agent.failures++;
  return hintMs + BACKOFF.floorMs + Math.random() * (ceiling - BACKOFF.floorMs);
}

function schedule(agent: SimAgent, delayMs: number): void {
  if (!running || agent.phase === "revoked" || agent.phase === "stopped") return;
  agent.phase = "waiting";
  agent.dueAt = Date.now() + delayMs;
}

function pump(): void {
  while (running && opening < config.openConcurrency && runQueue.length > 0) {
    const agent = runQueue.shift();
    if (agent?.phase !== "idle") continue;
    opening++;
    agent.phase = "opening";
    void openAgent(agent).finally(() => {
      opening--;
      pump();
    });
  }
}

/**
 * Unary calls go over their own few connections: the gateway allows
 * AGW_MAX_STREAMS_PER_CONNECTION (100) concurrent streams per connection, and a connection
 * full of ControlStreams would queue unary calls inside node:http2 for ever.
 */
const UNARY_CONNECTIONS = 4;
let unaryNext = 0;

async function call(agent: SimAgent, method: string, body: Uint8Array, auth = true): Promise<Uint8Array> {
  const session = await connections.get(-1 - (unaryNext++ % UNARY_CONNECTIONS));
  return unaryBytes(session, `${SERVICE}/${method}`, body, auth && agent.token ? { authorization: `Bearer ${agent.token}` } : {});
}

async function handshake(agent: SimAgent): Promise<void> {
  const begin = fromBinary(
    BeginAuthHandshakeResponseSchema,
    await call(agent, "BeginAuthHandshake", toBinary(BeginAuthHandshakeRequestSchema, create(BeginAuthHandshakeRequestSchema, { agentId: agent.agentId, identityPublicKey: agent.publicKey })), false),
  );
  const transcript = authTranscript({ challengeId: begin.challengeId, nonce: begin.nonce, agentId: agent.agentId, publicKey: agent.publicKey });
  const signature = new Uint8Array(nodeSign(null, transcript, agent.key));
  const done = fromBinary(
    CompleteAuthHandshakeResponseSchema,
    await call(
      agent,
      "CompleteAuthHandshake",
      toBinary(CompleteAuthHandshakeRequestSchema, create(CompleteAuthHandshakeRequestSchema, { challengeId: begin.challengeId, agentId: agent.agentId, signature })),
      false,
    ),
  );
  agent.token = done.sessionToken;
  agent.tokenExpiresAt = done.expiresAt ? Number(done.expiresAt.seconds) * 1000 : Date.now() + 3_600_000;
  stats.handshakes++;
}

async function openAgent(agent: SimAgent): Promise<void> {
  stats.attempts++;
  try {
    if (!agent.token || Date.now() > agent.tokenExpiresAt - REFRESH_BEFORE_MS) {
      try {
        await handshake(agent);
      } catch (err) {
        stats.handshakeErrors++;
        throw err;
      }
    }
    await openStream(agent);
  } catch (err) {
    const key = errorKey(err);
    count(stats.errors, key);
    if (key === "permission_denied") {
      agent.phase = "revoked";
      agent.revokedAt = epochMs();
      return;
    }
    if (key === "unauthenticated") agent.token = undefined;
    const hint = err instanceof LeanConnectError ? err.retryAfterMs : undefined;
    if (key === "resource_exhausted") stats.resourceExhausted++;
    schedule(agent, backoffMs(agent, hint));
  }
}

function openStream(agent: SimAgent): Promise<void> {
  return connections.get(agent.slot).then(
    (session) =>
      new Promise<void>((resolve, reject) => {
        let welcomed = false;
        agent.goAway = undefined;
        const stream = bidi(session, `${SERVICE}/ControlStream`, ControlStreamRequestSchema, ControlStreamResponseSchema, { authorization: `Bearer ${agent.token}` }, {
          onMessage: (message) => {
            if (message.kind.case === "welcome" && !welcomed) {
              welcomed = true;
              agent.phase = "streaming";
              agent.failures = 0;
              agent.streamingAt = epochMs();
              stats.streamOpens++;
              resolve();
              return;
            }
            onMessage(agent, message);
          },
          onEnd: (error) => {
            if (agent.stream === stream) agent.stream = undefined;
            if (!welcomed) {
              reject(error ?? new Error("stream ended before the welcome"));
              return;
            }
            onStreamEnd(agent, error);
          },
        });
        agent.stream = stream;
        stream.send(create(ControlStreamRequestSchema, { kind: { case: "hello", value: { agentVersion: agent.version, lastAppliedSequence: agent.lastApplied } } }));
      }),
  );
}

function onStreamEnd(agent: SimAgent, error: Error | undefined): void {
  if (agent.phase === "revoked" || agent.phase === "stopped" || !running) return;
  const goAway = agent.goAway;
  agent.phase = "idle";
  if (!goAway) {
    if (error) count(stats.errors, `stream:${errorKey(error)}`);
    if (error instanceof LeanConnectError && error.code === "unauthenticated") agent.token = undefined;
    if (error instanceof LeanConnectError && error.code === "permission_denied") {
      agent.phase = "revoked";
      agent.revokedAt = epochMs();
      return;
    }
    schedule(agent, backoffMs(agent, error instanceof LeanConnectError ? error.retryAfterMs : undefined));
    return;
  }
  switch (goAway.reason) {
    case GoAwayReason.REVOKED:
      agent.phase = "revoked";
      return;
    case GoAwayReason.SUPERSEDED:
      agent.phase = "stopped";
      return;
    case GoAwayReason.SESSION_ENDED:
      agent.token = undefined;
      schedule(agent, goAway.afterMs + Math.random() * 100);
      return;
    default:
      schedule(agent, goAway.afterMs + Math.random() * 100);
  }
}

function reply(agent: SimAgent, kind: MessageInitShape<typeof ControlStreamRequestSchema>): void {
  agent.stream?.send(create(ControlStreamRequestSchema, kind));
}

function onMessage(agent: SimAgent, message: ControlStreamResponse): void {
  switch (message.kind.case) {
    case "command": {
      const command = message.kind.value;
      stats.commands++;
      let status = AckStatus.OK;
      let reason = "";
      if (command.sequence > agent.lastApplied) {
        if (command.payload.case === "peerRevoked") {
          stats.peerRevoked++;
          agent.peerRevokedAt = epochMs();
        } else if (command.payload.case === "rollout") {
          stats.rolloutDirectives++;
          if (rolloutDirectiveAt.length < MAX_DIRECTIVE_TIMES) rolloutDirectiveAt.push(epochMs());
          const directive = command.payload.value;
          const version = directive.manifest ? fromBinary(ReleaseManifestSchema, directive.manifest.manifest).version : "";
          reply(agent, { kind: { case: "rolloutProgress", value: { rolloutId: directive.rolloutId, stage: RolloutStage.RECEIVED, message: "" } } });
          if (agent.failing) {
            status = AckStatus.FAILED;
            reason = "simulated canary failure";
            reply(agent, { kind: { case: "rolloutProgress", value: { rolloutId: directive.rolloutId, stage: RolloutStage.FAILED, message: reason } } });
          } else {
            agent.version = version;
            reply(agent, { kind: { case: "rolloutProgress", value: { rolloutId: directive.rolloutId, stage: RolloutStage.SUCCEEDED, message: "" } } });
            void heartbeat(agent);
          }
        }
        agent.lastApplied = command.sequence;
      }
      reply(agent, { kind: { case: "ack", value: { sequence: command.sequence, status, reason } } });
      stats.acks++;
      break;
    }
    case "ping":
      reply(agent, { kind: { case: "pong", value: { nonce: message.kind.value.nonce } } });
      break;
    case "goAway": {
      const g = message.kind.value;
      count(stats.goAways, GoAwayReason[g.reason] ?? String(g.reason));
      agent.goAway = { reason: g.reason, afterMs: g.reconnectAfter ? Number(g.reconnectAfter.seconds) * 1000 + g.reconnectAfter.nanos / 1e6 : 0 };
      if (g.reason === GoAwayReason.REVOKED) {
        agent.revokedAt = epochMs();
        agent.phase = "revoked";
      }
      break;
    }
    default:
      break;
  }
}

async function heartbeat(agent: SimAgent): Promise<void> {
  if (!agent.token) return;
  inflightUnary++;
  try {
    const body = toBinary(
      UploadHeartbeatRequestSchema,
      create(UploadHeartbeatRequestSchema, {
        status: AgentStatus.HEALTHY,
        agentVersion: agent.version,
        uptime: durationFromMs(Date.now() - startedAt),
        host: { hostname: `sim-${agent.index}`, os: "linux", arch: "x64", agentVersion: agent.version },
      }),
    );
    await call(agent, "UploadHeartbeat", body);
    stats.heartbeats++;
  } catch (err) {
    stats.heartbeatErrors++;
    count(stats.errors, `heartbeat:${errorKey(err)}`);
  } finally {
    inflightUnary--;
  }
}

async function upload(agent: SimAgent): Promise<void> {
  if (!agent.token) return;
  inflightUnary++;
  try {
    const observedAt = timestampNow();
    const points = Array.from({ length: config.pointsPerUpload }, (_, i) => ({
      id: `${agent.index}-${startedAt}-${agent.uploadSeq}-${i}`,
      name: "sim.cpu",
      labels: { core: String(i % 4) },
      value: Math.random(),
      observedAt,
    }));
    agent.uploadSeq++;
    await call(agent, "UploadTelemetry", toBinary(UploadTelemetryRequestSchema, create(UploadTelemetryRequestSchema, { points })));
    stats.uploads++;
    stats.pointsUploaded += points.length;
  } catch (err) {
    stats.uploadErrors++;
    count(stats.errors, `upload:${errorKey(err)}`);
  } finally {
    inflightUnary--;
  }
}

/** The one timer: due reconnects, and a slice of heartbeats and uploads per tick. */
function tick(): void {
  const now = Date.now();
  for (const a of agents) {
    if (a.phase === "waiting" && now >= a.dueAt) {
      a.phase = "idle";
      runQueue.push(a);
    } else if (a.phase === "streaming" && a.token && now > a.tokenExpiresAt - REFRESH_BEFORE_MS) {
      // Refresh the session: handshake again, then reopen the stream with the new token.
      a.token = undefined;
      a.stream?.end();
    }
  }
  pump();
  const n = agents.length;
  if (n === 0) return;
  if (config.heartbeatMs > 0) {
    const slice = Math.ceil((n * TICK_MS) / config.heartbeatMs);
    for (let i = 0; i < slice && inflightUnary < MAX_INFLIGHT_UNARY; i++) {
      const a = agents[heartbeatCursor++ % n];
      if (a?.phase === "streaming") void heartbeat(a);
    }
  }
  if (config.uploadMs > 0) {
    const slice = Math.ceil((n * TICK_MS) / config.uploadMs);
    for (let i = 0; i < slice && inflightUnary < MAX_INFLIGHT_UNARY; i++) {
      const a = agents[uploadCursor++ % n];
      if (a?.phase === "streaming") void upload(a);
    }
  }
}

async function registerAll(token: string, concurrency: number): Promise<void> {
  const out: Array<{ index: number; agentId: string; state: number; verificationCode: string }> = [];
  let errors = 0;
  const todo = agents.filter((a) => !a.agentId);
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const agent = todo[next++];
      if (!agent) break;
      const name = `sim-${agent.index}`;
      const proofSignature = new Uint8Array(nodeSign(null, registerTranscript({ token, publicKey: agent.publicKey, name }), agent.key));
      for (let attempt = 0; attempt < 20; attempt++) {
        try {
          const res = fromBinary(
            RegisterResponseSchema,
            await call(
              agent,
              "Register",
              toBinary(
                RegisterRequestSchema,
                create(RegisterRequestSchema, { enrollmentToken: token, identityPublicKey: agent.publicKey, name, host: { hostname: name, os: "linux", arch: "x64" }, proofSignature }),
              ),
              false,
            ),
          );
          agent.agentId = res.agentId;
          out.push({ index: agent.index, agentId: res.agentId, state: res.state, verificationCode: res.verificationCode });
          break;
        } catch (err) {
          errors++;
          count(stats.errors, `register:${errorKey(err)}`);
          await new Promise((r) => setTimeout(r, err instanceof LeanConnectError && err.retryAfterMs ? err.retryAfterMs : 200));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
  send({ type: "registered", agents: out, errors });
}

function collect(): Collected {
  const pick = (f: (a: SimAgent) => number): Array<[number, number]> => agents.filter((a) => !Number.isNaN(f(a))).map((a) => [a.index, f(a)]);
  return {
    peerRevokedAt: pick((a) => a.peerRevokedAt),
    revokedAt: pick((a) => a.revokedAt),
    streamingAt: pick((a) => a.streamingAt),
    versions: agents.map((a) => [a.index, a.version]),
    rolloutDirectiveAt,
  };
}

function stop(): void {
  running = false;
  if (ticker) clearInterval(ticker);
  if (statsTimer) clearInterval(statsTimer);
  for (const a of agents) a.stream?.cancel();
  connections?.closeAll();
  setTimeout(() => process.exit(0), 200).unref();
}

process.on("message", (raw) => {
  const message = raw as ToWorker;
  try {
    switch (message.type) {
      case "init": {
        config = message.config;
        connections = new Connections(config.url);
        const failing = new Set(config.failingIndexes);
        agents = config.agents.map(
          (spec, i) => new SimAgent(spec.index, Math.floor(i / config.perConnection), spec, spec.agentId ?? "", config.agentVersion, failing.has(spec.index)),
        );
        statsTimer = setInterval(() => send({ type: "stats", stats: snapshot() }), STATS_EVERY_MS);
        send({ type: "ready" });
        break;
      }
      case "register":
        void registerAll(message.token, message.concurrency);
        break;
      case "start":
        running = true;
        for (const a of agents) if (a.phase === "idle") runQueue.push(a);
        ticker = setInterval(tick, TICK_MS);
        pump();
        break;
      case "reset":
        for (const a of agents) {
          a.peerRevokedAt = Number.NaN;
          a.revokedAt = Number.NaN;
          a.streamingAt = Number.NaN;
        }
        rolloutDirectiveAt = [];
        break;
      case "collect":
        send({ type: "collected", collected: collect(), stats: snapshot() });
        break;
      case "stop":
        stop();
        break;
    }
  } catch (err) {
    send({ type: "fatal", message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  }
});

// The coordinator going away ends the worker (bounded: no orphaned load generators).
process.on("disconnect", () => stop());
