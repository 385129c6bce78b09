import { promises as fs } from "node:fs";
import { join } from "node:path";
import { generateKeyPair, publicKeyFromPrivate } from "../../client/protocol/ed25519.js";
import type { Identity } from "./direct.js";
import { ensurePrivateDir, readIfExists, removeStaleTempFiles, writeFileAtomic } from "./atomic-file.js";

/**
 * The agent's state directory (layout: docs/agent.md, "State directory"). Everything is 0600
 * in a 0700 directory and written atomically. The private key has its own file, written once
 * and never rewritten, so the frequent state updates can never damage it.
 */
export const FILES = {
  identity: "identity.key",
  state: "state.json",
  session: "session.json",
  status: "status.json",
  socket: "events.sock",
  spool: "spool",
  outbox: "outbox",
  tlsCert: "tls-cert.pem",
  tlsKey: "tls-key.pem",
} as const;

/** Outcome of a command as recorded for re-acknowledging a redelivered sequence. */
export type AckName = "OK" | "FAILED" | "UNSUPPORTED";

/** What the agent remembers between runs (no secrets but the file path of the key). */
export interface AgentStateFile {
  version: 1;
  /** Gateway base URL, e.g. https://gw.example.com:7070 */
  server: string;
  agentId: string;
  tenantId: string;
  name: string;
  labels: Record<string, string>;
  verificationCode: string;
  registeredAt: string;
  /** Set on the first successful handshake. */
  approvedAt?: string;
  /** How the gateway's TLS certificate is trusted (no trust on first use). */
  tls: { caFile?: string; pins: string[] };
  /** Allow http:// to a non-loopback host (set only by an explicit flag). */
  allowInsecureHttp?: boolean;
  /** Pinned release public keys (hex), in addition to --release-key flags. */
  releaseKeys: string[];
  /** Highest command sequence applied (uint64 as a decimal string). */
  lastAppliedSequence: string;
  /** Outcomes of the most recent commands, to re-ack a redelivery with the same status. */
  recentAcks: Array<{ sequence: string; status: AckName; reason: string }>;
  /** Peers the gateway said were revoked: stop trusting these identities. */
  revokedPeers: Array<{ agentId: string; publicKey: string; revokedAt?: string; receivedAt: string }>;
  /**
   * Version installed by the last successful rollout, and the built-in version it replaced:
   * reported while that build still runs (a new build reports its own version again).
   */
  installedVersion?: { version: string; replaced: string };
  /** Set when the gateway revoked this identity; `run` then refuses to start. */
  revoked?: { at: string; reason: string; source: string };
}

/** The current session (a bearer secret: 0600, never printed or logged). */
export interface StoredSession {
  token: string;
  issuedAt: string;
  expiresAt: string;
  heartbeatIntervalMs: number;
}

/** What a running agent publishes for `agw-agent status` (no secrets). */
export interface RuntimeStatus {
  pid: number;
  startedAt: string;
  updatedAt: string;
  connected: boolean;
  lastContactAt?: string;
  lastError?: string;
  replicaId?: string;
  agentVersion: string;
  sessionExpiresAt?: string;
  outbox?: { files: number; bytes: number; points: number; events: number; droppedTotal: number };
  uploaded?: { points: number; events: number; duplicates: number };
  reconnects?: number;
}

const MAX_RECENT_ACKS = 64;
const MAX_REVOKED_PEERS = 1000;

/** Reads and writes the files of one state directory. Writes are serialized per process. */
export class StateStore {
  private writes: Promise<unknown> = Promise.resolve();

  constructor(readonly dir: string) {}

  /** Absolute path of a file in the state directory. */
  path(name: (typeof FILES)[keyof typeof FILES]): string {
    return join(this.dir, name);
  }

  /** Creates the directory (0700) and removes temp files from an interrupted write. */
  async init(): Promise<void> {
    await ensurePrivateDir(this.dir);
    await removeStaleTempFiles(this.dir);
  }

  /** The identity key pair, or undefined if none was generated yet. */
  async loadIdentity(): Promise<Identity | undefined> {
    const text = await readIfExists(this.path(FILES.identity));
    if (text === undefined) return undefined;
    const parsed = JSON.parse(text) as { algorithm?: string; privateKey?: string };
    if (parsed.algorithm !== "ed25519" || typeof parsed.privateKey !== "string" || !/^[0-9a-f]{64}$/.test(parsed.privateKey)) {
      throw new Error(`${this.path(FILES.identity)} is not an ed25519 identity key`);
    }
    const privateKey = Uint8Array.from(Buffer.from(parsed.privateKey, "hex"));
    return { privateKey, publicKey: publicKeyFromPrivate(privateKey) };
  }

  /** Generates the identity key on this host and writes it once (fails if one exists). */
  async createIdentity(): Promise<Identity> {
    const pair = generateKeyPair();
    const body = {
      algorithm: "ed25519",
      note: "agw-agent identity key (RFC 8032 seed). Never copy it off this host.",
      publicKey: Buffer.from(pair.publicKey).toString("hex"),
      privateKey: Buffer.from(pair.privateKey).toString("hex"),
    };
    await writeFileAtomic(this.path(FILES.identity), `${JSON.stringify(body, null, 2)}\n`, { exclusive: true });
    return pair;
  }

  /** The state file, or undefined before enrollment. */
  async load(): Promise<AgentStateFile | undefined> {
    const text = await readIfExists(this.path(FILES.state));
    if (text === undefined) return undefined;
    const state = JSON.parse(text) as AgentStateFile;
    if (state.version !== 1 || typeof state.agentId !== "string") throw new Error(`${this.path(FILES.state)} is not an agw-agent state file`);
    state.labels ??= {};
    state.tls ??= { pins: [] };
    state.tls.pins ??= [];
    state.releaseKeys ??= [];
    state.lastAppliedSequence ??= "0";
    state.recentAcks ??= [];
    state.revokedPeers ??= [];
    return state;
  }

  /** Writes the state file atomically (0600). */
  save(state: AgentStateFile): Promise<void> {
    const snapshot = `${JSON.stringify(state, null, 2)}\n`;
    return this.serialize(() => writeFileAtomic(this.path(FILES.state), snapshot));
  }

  /** The stored session, if any. */
  async loadSession(): Promise<StoredSession | undefined> {
    const text = await readIfExists(this.path(FILES.session));
    if (text === undefined) return undefined;
    try {
      const s = JSON.parse(text) as StoredSession;
      return typeof s.token === "string" && typeof s.expiresAt === "string" ? s : undefined;
    } catch {
      return undefined;
    }
  }

  /** Stores the session (0600). */
  saveSession(session: StoredSession): Promise<void> {
    const snapshot = `${JSON.stringify(session)}\n`;
    return this.serialize(() => writeFileAtomic(this.path(FILES.session), snapshot));
  }

  /** Deletes the stored session (revocation, or a session the gateway refused). */
  clearSession(): Promise<void> {
    return this.serialize(() => fs.rm(this.path(FILES.session), { force: true }));
  }

  /** The running agent's published status, if any. */
  async loadStatus(): Promise<RuntimeStatus | undefined> {
    const text = await readIfExists(this.path(FILES.status));
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as RuntimeStatus;
    } catch {
      return undefined;
    }
  }

  /** Publishes the running agent's status (informational: atomic, but not fsynced). */
  saveStatus(status: RuntimeStatus): Promise<void> {
    const snapshot = `${JSON.stringify(status, null, 2)}\n`;
    return this.serialize(() => writeFileAtomic(this.path(FILES.status), snapshot, { durable: false }));
  }

  /** Waits for every queued write. */
  flush(): Promise<void> {
    return this.writes.then(() => undefined);
  }

  private serialize(write: () => Promise<void>): Promise<void> {
    const next = this.writes.then(write, write);
    this.writes = next.catch(() => {});
    return next;
  }
}

/** A fresh state record for a just-registered agent. */
export function newState(input: Omit<AgentStateFile, "version" | "lastAppliedSequence" | "recentAcks" | "revokedPeers" | "registeredAt">): AgentStateFile {
  return { version: 1, ...input, registeredAt: new Date().toISOString(), lastAppliedSequence: "0", recentAcks: [], revokedPeers: [] };
}

/** Records a command's outcome (bounded list) and advances the last applied sequence. */
export function recordApplied(state: AgentStateFile, sequence: bigint, status: AckName, reason: string): void {
  if (sequence > BigInt(state.lastAppliedSequence)) state.lastAppliedSequence = sequence.toString();
  state.recentAcks = state.recentAcks.filter((a) => a.sequence !== sequence.toString());
  state.recentAcks.push({ sequence: sequence.toString(), status, reason });
  if (state.recentAcks.length > MAX_RECENT_ACKS) state.recentAcks.splice(0, state.recentAcks.length - MAX_RECENT_ACKS);
}

/** Adds a revoked peer (bounded list, newest kept). */
export function recordRevokedPeer(state: AgentStateFile, peer: { agentId: string; publicKey: string; revokedAt?: string }): void {
  state.revokedPeers = state.revokedPeers.filter((p) => p.agentId !== peer.agentId);
  state.revokedPeers.push({ ...peer, receivedAt: new Date().toISOString() });
  if (state.revokedPeers.length > MAX_REVOKED_PEERS) state.revokedPeers.splice(0, state.revokedPeers.length - MAX_REVOKED_PEERS);
}
