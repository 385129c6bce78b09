/**
 * Messages between the fleet-sim coordinator (bench/fleet-sim/main.ts) and its worker
 * processes (bench/fleet-sim/worker.ts), sent over the child_process IPC channel.
 */

/** One simulated agent as the coordinator hands it to a worker. */
export interface AgentSpec {
  index: number;
  /** Raw ed25519 private key (32 bytes) and public key, hex. */
  privateKey: string;
  publicKey: string;
  /** Known once registered (cached on disk with the key for a given gateway database). */
  agentId?: string;
}

/** What a worker does, and how each agent behaves. */
export interface WorkerConfig {
  url: string;
  agents: AgentSpec[];
  /** Streams (and unary calls) per HTTP/2 connection. */
  perConnection: number;
  /** Heartbeat period per agent, ms (0: none); spread evenly over the period. */
  heartbeatMs: number;
  /** Telemetry upload period per agent, ms (0: none), and points per upload. */
  uploadMs: number;
  pointsPerUpload: number;
  /** Agents that fail every rollout directive (canaries that break). */
  failingIndexes: number[];
  /** Agents opening (handshake + stream) at once in this worker. */
  openConcurrency: number;
  agentVersion: string;
}

export type ToWorker =
  | { type: "init"; config: WorkerConfig }
  | { type: "register"; token: string; concurrency: number }
  | { type: "start" }
  | { type: "reset" }
  | { type: "collect" }
  | { type: "stop" };

/** Counters a worker reports every STATS_EVERY_MS, and when asked. */
export interface WorkerStats {
  agents: number;
  streaming: number;
  revoked: number;
  /** Agents that stopped for any reason other than revocation (must stay 0: none gives up). */
  stopped: number;
  handshakes: number;
  handshakeErrors: number;
  streamOpens: number;
  attempts: number;
  resourceExhausted: number;
  errors: Record<string, number>;
  heartbeats: number;
  heartbeatErrors: number;
  uploads: number;
  pointsUploaded: number;
  uploadErrors: number;
  commands: number;
  peerRevoked: number;
  rolloutDirectives: number;
  acks: number;
  goAways: Record<string, number>;
  /** Worker's own CPU (user+system µs) and RSS. */
  cpuUs: number;
  rssBytes: number;
}

/** What collect returns: per-agent receipt times (epoch ms, high resolution; NaN = none). */
export interface Collected {
  /** index → epoch ms of the last PeerRevoked received since reset. */
  peerRevokedAt: Array<[number, number]>;
  /** index → epoch ms when a GoAway REVOKED arrived since reset. */
  revokedAt: Array<[number, number]>;
  /** index → epoch ms when the stream was welcomed last since reset. */
  streamingAt: Array<[number, number]>;
  /** index → the version the agent reports. */
  versions: Array<[number, string]>;
  /** Epoch ms of each rollout directive received since reset (the first MAX_DIRECTIVE_TIMES). */
  rolloutDirectiveAt: number[];
}

/** Receipt times of rollout directives kept per worker between resets. */
export const MAX_DIRECTIVE_TIMES = 200_000;

export type FromWorker =
  | { type: "ready" }
  | { type: "registered"; agents: Array<{ index: number; agentId: string; state: number; verificationCode: string }>; errors: number }
  | { type: "stats"; stats: WorkerStats }
  | { type: "collected"; collected: Collected; stats: WorkerStats }
  | { type: "fatal"; message: string };

/** How often workers push their counters. */
export const STATS_EVERY_MS = 500;

/** A high-resolution wall clock comparable across processes on one machine. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}
