import { durationFromMs, timestampNow } from "@bufbuild/protobuf/wkt";
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import { GoAwayReason } from "../../gen/agentgateway/v1/control_pb.js";
import { streamStandings } from "../agents/agent-store.js";
import type { AgentIdentity } from "../identity/principal.js";
import type { Bus, CommandsQueued, CommandsWithdrawn } from "../bus/bus.js";
import type { Schema } from "../db/schema.js";
import { metrics } from "../observability/metrics.js";
import { type Ack, ackThrough, pendingCommands, recordAcks, type StoredCommand, tenantCommandBodies } from "./command-store.js";
import { AckBuffer } from "./ack-buffer.js";
import { Batcher } from "./batcher.js";
import { toWireCommand } from "./commands.js";
import { Admission } from "./admission.js";
import { Withdrawals } from "./withdrawals.js";
import { AgentConnection, type Outgoing, type StreamSink } from "./connection.js";

/** Timing knobs of the hub (from config; tests shrink them). */
export interface HubOptions {
  replicaId: string;
  /** Announced in the welcome: how often the agent sends UploadHeartbeat. */
  heartbeatIntervalMs: number;
  maxStreamAgeMs: number;
  pingIntervalMs: number;
  drainSpreadMs: number;
  tickMs?: number;
  ackFlushMs?: number;
  /** In-flight caps for reconnect storms (0 = none) and the spread of the retry hint. */
  admission?: { handshakes: number; streamOpens: number; retrySpreadMs: number };
}

const DELIVERY_CHUNK = 1000;
/** Commands fetched per agent per query; an agent with more gets further pages at once. */
const COMMANDS_PER_PAGE = 100;
/** Tenant-wide notices kept decoded: each is built once and the same message goes to every stream. */
const SHARED_CACHE = 1024;

/**
 * The streams this replica holds, and everything that reaches them: command delivery (read from
 * the database, so a replica that missed a notification catches up on the next pull), acks
 * (coalesced into one UPDATE per flush), go-aways on revocation, fencing, supersession, maximum
 * age and drain, and keepalive pings — all driven by one shared timer, not one per stream.
 */
export class ControlHub {
  private readonly byAgent = new Map<string, AgentConnection>();
  private readonly dirty = new Set<string>();
  private deliveryRunning = false;
  private deliveryScheduled = false;
  /** Tenant-wide notices, decoded once (command id → the message every stream is given). */
  private readonly shared = new Map<string, Outgoing>();
  private readonly withdrawals = new Withdrawals();
  private readonly acks: AckBuffer;
  /** Acks the database refused on their own (dropped), and acks shed while the buffer was full. */
  readonly ackStats: AckBuffer["stats"];
  /** Withdrawn commands this replica dropped before they reached a stream's transport. */
  readonly withdrawStats = { dropped: 0 };
  private readonly ticker: NodeJS.Timeout;
  private readonly ackTimer: NodeJS.Timeout;
  private readonly unsubscribe: Array<() => void>;
  private nextPingNonce = 1n;
  /** Load shedding of handshakes and stream openings (a reconnect storm is refused, not queued). */
  readonly admission: { handshakes: Admission; streamOpens: Admission };
  /** Re-checks of agents' standing, one query per batch (a storm's openings, bus bursts). */
  private readonly rechecks = new Batcher<string, true>((batch) => this.recheckNow([...batch.keys()]));
  /** Hellos' "applied through" sequences, one statement per batch. */
  private readonly applied = new Batcher<string, number>((batch) => ackThrough(this.db, batch), Math.max);

  constructor(
    private readonly db: Kysely<Schema>,
    private readonly bus: Bus,
    private readonly logger: Logger,
    private readonly options: HubOptions,
  ) {
    this.acks = new AckBuffer((rows) => recordAcks(db, rows), logger);
    this.ackStats = this.acks.stats;
    const caps = options.admission ?? { handshakes: 0, streamOpens: 0, retrySpreadMs: 0 };
    const retry = { minMs: 1000, spreadMs: caps.retrySpreadMs };
    this.admission = { handshakes: new Admission("handshakes", caps.handshakes, retry), streamOpens: new Admission("stream openings", caps.streamOpens, retry) };
    this.ticker = setInterval(() => this.tick(Date.now()), options.tickMs ?? 1000);
    this.ticker.unref();
    this.ackTimer = setInterval(() => void this.flushAcks(), options.ackFlushMs ?? 200);
    this.ackTimer.unref();
    this.unsubscribe = [
      bus.subscribe("commands_queued", (payload) => this.onCommandsQueued(payload)),
      bus.subscribe("commands_withdrawn", (payload) => this.onCommandsWithdrawn(payload)),
      bus.subscribe("agent_changed", (agentId) => void this.recheckAgents([agentId])),
      bus.subscribe("session_changed", (agentId) => void this.recheckAgents([agentId])),
      bus.subscribe("stream_opened", (payload) => this.onStreamOpened(payload)),
    ];
  }

  /** Number of open streams on this replica. */
  get size(): number {
    return this.byAgent.size;
  }

  /**
   * Registers a new stream for an authenticated agent. The newest connection wins: an older
   * stream of the same agent here is closed now, and other replicas are told to close theirs.
   */
  async open(identity: AgentIdentity, lastAppliedSequence: number, sink: StreamSink): Promise<AgentConnection> {
    const now = Date.now();
    const jitter = 1 + (Math.random() * 0.2 - 0.1);
    const conn = new AgentConnection(identity.agentId, identity.tenantId, identity.sessionId, identity.expiresAt.getTime(), now, now + this.options.maxStreamAgeMs * jitter, sink);
    conn.lastSent = lastAppliedSequence;
    this.byAgent.get(identity.agentId)?.close(this.goAway(GoAwayReason.SUPERSEDED, 0, "a newer stream of this agent took over"));
    this.byAgent.set(identity.agentId, conn);
    try {
      await this.bus.publish("stream_opened", { agentId: identity.agentId, connectionId: conn.id });
      // The call was authenticated when it opened; a revocation, fence or expiry committed since
      // then was announced while this stream was not registered yet, so look again now that it
      // is: from here on every change reaches it through the bus.
      await this.recheckAgents([identity.agentId]);
    } catch (err) {
      // The caller never gets this connection: it must not stay registered.
      this.remove(conn);
      throw err;
    }
    return conn;
  }

  /** The welcome message for a new stream. */
  welcome(): Outgoing {
    return {
      kind: {
        case: "welcome" as const,
        value: {
          serverTime: timestampNow(),
          replicaId: this.options.replicaId,
          heartbeatInterval: durationFromMs(this.options.heartbeatIntervalMs),
          maxStreamAge: durationFromMs(this.options.maxStreamAgeMs),
          pingInterval: durationFromMs(this.options.pingIntervalMs),
        },
      },
    };
  }

  /** Forgets a stream that ended (only if it is still the agent's current one). */
  remove(conn: AgentConnection): void {
    conn.close();
    if (this.byAgent.get(conn.agentId) === conn) this.byAgent.delete(conn.agentId);
  }

  /** Schedules delivery of the agent's pending commands. */
  markDirty(agentId: string): void {
    if (!this.byAgent.has(agentId)) return;
    this.dirty.add(agentId);
    this.scheduleDelivery();
  }

  /** Buffers an acknowledgement from a stream; acks for commands never sent are ignored. */
  ack(conn: AgentConnection, ack: Omit<Ack, "agentId" | "tenantId">): boolean {
    if (ack.sequence > conn.lastSent) return false;
    this.acks.push({ agentId: conn.agentId, tenantId: conn.tenantId, ...ack });
    metrics.commandsAcked.add(1, { status: ack.status });
    return true;
  }

  /** Records a pong. */
  pong(conn: AgentConnection, nonce: bigint): void {
    if (conn.pingNonce === nonce) conn.pingNonce = undefined;
  }

  /**
   * Tells every agent to reconnect after a random delay up to the drain spread (so they spread
   * over the other replicas instead of stampeding one), then ends the streams.
   */
  drain(): void {
    for (const conn of this.byAgent.values()) {
      conn.close(this.goAway(GoAwayReason.DRAIN, Math.random() * this.options.drainSpreadMs, "this gateway replica is shutting down"));
    }
    this.byAgent.clear();
  }

  /** After a lost bus connection: re-check every local stream against the database. */
  resync(): void {
    const agentIds = [...this.byAgent.keys()];
    void this.recheckAgents(agentIds);
    for (const id of agentIds) this.dirty.add(id);
    this.scheduleDelivery();
  }

  /** Stops timers and flushes buffered acks. */
  async close(): Promise<void> {
    clearInterval(this.ticker);
    clearInterval(this.ackTimer);
    for (const off of this.unsubscribe) off();
    await this.flushAcks();
  }

  /** Writes the buffered acks (ack-buffer.ts). */
  flushAcks(): Promise<void> {
    return this.acks.flush();
  }

  private goAway(reason: GoAwayReason, reconnectAfterMs: number, message: string) {
    return { kind: { case: "goAway" as const, value: { reason, reconnectAfter: durationFromMs(Math.round(reconnectAfterMs)), message } } };
  }

  private onCommandsQueued(queued: CommandsQueued): void {
    for (const conn of this.byAgent.values()) if (queued.scope === "all" || conn.tenantId === queued.tenantId) this.dirty.add(conn.agentId);
    this.scheduleDelivery();
  }

  /**
   * Drops the withdrawn commands this replica still holds for its streams (held while a stream
   * registers, or queued in its sink), and remembers the withdrawal for a delivery whose read of
   * the table began before it committed. One walk over the tenant's local streams per withdrawal.
   */
  private onCommandsWithdrawn(withdrawn: CommandsWithdrawn): void {
    this.withdrawals.record(withdrawn);
    let dropped = 0;
    for (const conn of this.byAgent.values()) if (conn.tenantId === withdrawn.tenantId) dropped += conn.withdraw(this.withdrawals.drop);
    this.withdrawStats.dropped += dropped;
    if (dropped > 0) this.logger.info({ ...withdrawn, dropped }, "withdrawn commands dropped before they reached their streams");
  }

  private onStreamOpened(opened: { agentId: string; connectionId: string }): void {
    const conn = this.byAgent.get(opened.agentId);
    if (conn && conn.id !== opened.connectionId) {
      conn.close(this.goAway(GoAwayReason.SUPERSEDED, 0, "a newer stream of this agent took over"));
      this.byAgent.delete(conn.agentId);
    }
  }

  /**
   * Acknowledges (OK) an agent's own commands up to the sequence its hello says it applied, so
   * a reconnect never redelivers them; batched with the other streams opening meanwhile.
   */
  async acknowledgeApplied(agentId: string, sequence: number): Promise<void> {
    if (sequence > 0) await this.applied.run([[agentId, sequence]]);
  }

  /** Closes local streams whose agent is no longer ACTIVE or whose session was replaced. */
  private async recheckAgents(agentIds: string[]): Promise<void> {
    const local = agentIds.filter((id) => this.byAgent.has(id));
    if (local.length > 0) await this.rechecks.run(local.map((id) => [id, true] as const));
  }

  private async recheckNow(agentIds: string[]): Promise<void> {
    const local = agentIds.filter((id) => this.byAgent.has(id));
    if (local.length === 0) return;
    try {
      const rows = await streamStandings(this.db, local);
      for (const row of rows) {
        const conn = this.byAgent.get(row.agentId);
        if (!conn) continue;
        if (row.state === "REVOKED") {
          conn.close(this.goAway(GoAwayReason.REVOKED, 0, row.revokeReason ?? "revoked"));
        } else if (row.state !== "ACTIVE" || row.sessionId !== conn.sessionId || !row.sessionExpiresAt || row.sessionExpiresAt.getTime() <= Date.now()) {
          conn.close(this.goAway(GoAwayReason.SESSION_ENDED, 0, "the session ended: handshake again"));
        } else {
          continue;
        }
        this.byAgent.delete(row.agentId);
      }
    } catch (err) {
      this.logger.warn({ err }, "re-checking agents failed");
    }
  }

  private scheduleDelivery(): void {
    if (this.deliveryScheduled) return;
    this.deliveryScheduled = true;
    setImmediate(() => {
      this.deliveryScheduled = false;
      void this.deliver();
    });
  }

  /** Pulls pending commands for dirty agents, a chunk at a time, and writes them in order. */
  private async deliver(): Promise<void> {
    if (this.deliveryRunning) return;
    this.deliveryRunning = true;
    let chunk: AgentConnection[] = [];
    try {
      while (this.dirty.size > 0) {
        chunk = [];
        for (const agentId of this.dirty) {
          this.dirty.delete(agentId);
          const conn = this.byAgent.get(agentId);
          if (conn && !conn.closed) chunk.push(conn);
          if (chunk.length >= DELIVERY_CHUNK) break;
        }
        const commands = await pendingCommands(this.db, chunk.map((c) => ({ agentId: c.agentId, after: c.lastSent })), COMMANDS_PER_PAGE);
        await this.loadShared(commands);
        const perAgent = new Map<string, number>();
        let delivered = 0;
        for (const stored of commands) {
          const conn = this.byAgent.get(stored.agentId);
          if (!conn || stored.sequence <= conn.lastSent) continue;
          let message: Outgoing | undefined;
          if (stored.shared) {
            message = this.shared.get(stored.commandId);
          } else {
            const origin = { tenantId: conn.tenantId, kind: stored.kind, ref: stored.ref, sequence: stored.sequence };
            // Withdrawn after this read began (a rollout halted meanwhile): its row is no longer pending.
            if (this.withdrawals.isWithdrawn(origin)) {
              this.withdrawStats.dropped++;
              continue;
            }
            message = { kind: { case: "command" as const, value: toWireCommand(stored) } };
            this.withdrawals.tag(message, origin);
          }
          // A notice whose row went between the two queries (retention) cannot be sent.
          if (!message) continue;
          conn.send(message);
          conn.lastSent = stored.sequence;
          delivered++;
          perAgent.set(stored.agentId, (perAgent.get(stored.agentId) ?? 0) + 1);
        }
        metrics.commandsDelivered.add(delivered);
        // A full page may not be all: fetch the next one in this same run, not on the next
        // command or reconnect.
        for (const [agentId, n] of perAgent) if (n >= COMMANDS_PER_PAGE) this.dirty.add(agentId);
      }
    } catch (err) {
      // Put the chunk back: the shared tick schedules another attempt.
      for (const conn of chunk) this.dirty.add(conn.agentId);
      this.logger.warn({ err }, "command delivery failed; will retry on the next tick");
    } finally {
      this.deliveryRunning = false;
    }
  }

  /** Decodes the tenant-wide notices of a delivery batch not decoded yet (one query for their bodies). */
  private async loadShared(commands: StoredCommand[]): Promise<void> {
    const missing = new Set<string>();
    for (const c of commands) if (c.shared && !this.shared.has(c.commandId)) missing.add(c.commandId);
    if (missing.size === 0) return;
    const bodies = await tenantCommandBodies(this.db, [...missing]);
    for (const c of commands) {
      const body = bodies.get(c.commandId);
      if (!c.shared || !body || this.shared.has(c.commandId)) continue;
      if (this.shared.size >= SHARED_CACHE) {
        const oldest = this.shared.keys().next().value;
        if (oldest !== undefined) this.shared.delete(oldest);
      }
      this.shared.set(c.commandId, { kind: { case: "command", value: toWireCommand(c, body) } });
    }
  }

  /** The shared timer: maximum age, session expiry, keepalive pings and dead-peer detection. */
  private tick(now: number): void {
    const ping = this.options.pingIntervalMs;
    for (const conn of this.byAgent.values()) {
      let last: ReturnType<ControlHub["goAway"]> | undefined;
      if (now >= conn.sessionExpiresAt) last = this.goAway(GoAwayReason.SESSION_ENDED, 0, "the session expired: handshake again");
      else if (now >= conn.maxAgeAt) last = this.goAway(GoAwayReason.MAX_AGE, Math.random() * 1000, "maximum stream age reached: reconnect");
      if (last) {
        conn.close(last);
        this.byAgent.delete(conn.agentId);
        continue;
      }
      if (conn.pingNonce !== undefined && now - conn.pingSentAt >= ping) {
        this.logger.info({ agentId: conn.agentId }, "control stream peer did not answer a ping; closing");
        conn.close();
        this.byAgent.delete(conn.agentId);
      } else if (conn.pingNonce === undefined && now - conn.lastPingAt >= ping) {
        conn.pingNonce = this.nextPingNonce++;
        conn.pingSentAt = now;
        conn.lastPingAt = now;
        conn.send({ kind: { case: "ping", value: { nonce: conn.pingNonce } } });
      }
    }
    if (this.dirty.size > 0) this.scheduleDelivery();
  }
}
