import type { Kysely } from "kysely";
import type { Logger } from "pino";
import type { Bus } from "../bus/bus.js";
import type { Worker } from "../workers/worker.js";
import type { AgentStateName, Schema } from "../db/schema.js";
import { type AgentRecord, getAgentsByIds, listAgentIdsSeenSince } from "./agent-store.js";

/** Which agents one watch wants (the same meaning as ListAgents' filters). */
export interface WatchFilter {
  states: readonly AgentStateName[];
  labels: Readonly<Record<string, string>>;
  namePrefix: string;
}

/** What a watcher hands to its stream next. */
export type WatchBatch =
  | { kind: "resync" }
  | { kind: "changes"; upserts: AgentRecord[]; removedIds: string[] }
  | { kind: "keepalive" }
  | { kind: "closed" };

/**
 * Limits of the hub. How many watches one API key may open is the shared per-credential stream
 * cap (server/identity/stream-cap-interceptor.ts, AGW_MAX_STREAMS_PER_CREDENTIAL).
 */
export interface AgentWatchOptions {
  /** How often collected changes are re-read and handed out (one query per tick per replica). */
  tickMs: number;
  /** Changes buffered for one slow watcher before it is told to take a fresh snapshot instead. */
  maxQueuedPerStream: number;
  /** Ids collected between ticks before every watcher is resynchronised instead. */
  maxDirty: number;
  /** A watcher with nothing to send for this long gets an empty message (dead connections show). */
  keepaliveMs: number;
  /** Agents per message and per re-read query. */
  batchSize: number;
  /**
   * How often agents that merely heartbeat (nothing else changed, so nothing was announced) are
   * re-read, so "last heartbeat" in a console is at most this much behind.
   */
  refreshMs: number;
}

/** Defaults: changes out within a fraction of a second, heartbeat times within 30 s. */
export const DEFAULT_WATCH_OPTIONS: AgentWatchOptions = {
  tickMs: 200,
  maxQueuedPerStream: 10_000,
  maxDirty: 20_000,
  keepaliveMs: 30_000,
  batchSize: 500,
  refreshMs: 30_000,
};

/** Bus payloads of `agents_updated` stay under PostgreSQL's 8000-byte NOTIFY limit. */
const IDS_PER_NOTIFICATION = 190;

/**
 * Announces agents whose admin view changed in a way that is not a lifecycle transition
 * (registration, liveness, reported version or status), in as few notifications as fit.
 */
export async function announceAgentsUpdated(bus: Bus, agentIds: readonly string[]): Promise<void> {
  for (let i = 0; i < agentIds.length; i += IDS_PER_NOTIFICATION) {
    await bus.publish("agents_updated", agentIds.slice(i, i + IDS_PER_NOTIFICATION));
  }
}

/** Whether an agent passes a watch's filter; mirrors listAgents' SQL. */
export function matchesFilter(agent: AgentRecord, filter: WatchFilter): boolean {
  if (filter.states.length > 0 && !filter.states.includes(agent.state)) return false;
  if (filter.namePrefix && !agent.name.startsWith(filter.namePrefix)) return false;
  for (const [key, value] of Object.entries(filter.labels)) {
    if (agent.labels[key] !== value) return false;
  }
  return true;
}

/**
 * One open WatchAgents stream. It holds no copy of the client's view: changes are coalesced per
 * agent id until the stream takes them, so memory is bounded by maxQueuedPerStream, and a
 * watcher past it is asked to resynchronise (a fresh snapshot) instead of growing.
 */
export class AgentWatcher {
  private queue = new Map<string, AgentRecord | null>();
  private needsResync = false;
  private closed = false;
  private wake: (() => void) | undefined;
  lastSentAt = Date.now();

  constructor(
    readonly tenantId: string,
    readonly filter: WatchFilter,
    private readonly maxQueued: number,
    private readonly batchSize: number,
  ) {}

  /** Called by the hub with a re-read agent of this watcher's tenant. */
  offer(agent: AgentRecord): void {
    this.put(agent.id, matchesFilter(agent, this.filter) ? agent : null);
  }

  resync(): void {
    this.needsResync = true;
    this.queue.clear();
    this.poke();
  }

  close(): void {
    this.closed = true;
    this.poke();
  }

  /** Wakes the stream so it sends a keepalive if it has been quiet. */
  keepalive(now: number, quietMs: number): void {
    if (now - this.lastSentAt >= quietMs) this.poke();
  }

  /** Waits for the next thing to send; `keepaliveMs` decides whether a wake-up with nothing queued is a keepalive. */
  async next(signal: AbortSignal, keepaliveMs: number): Promise<WatchBatch> {
    for (;;) {
      if (this.closed || signal.aborted) return { kind: "closed" };
      if (this.needsResync) {
        this.needsResync = false;
        return { kind: "resync" };
      }
      if (this.queue.size > 0) return this.take();
      if (Date.now() - this.lastSentAt >= keepaliveMs) return { kind: "keepalive" };
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        signal.addEventListener("abort", () => resolve(), { once: true });
      });
      this.wake = undefined;
    }
  }

  private take(): WatchBatch {
    const upserts: AgentRecord[] = [];
    const removedIds: string[] = [];
    for (const [id, agent] of this.queue) {
      if (upserts.length + removedIds.length >= this.batchSize) break;
      this.queue.delete(id);
      if (agent) upserts.push(agent);
      else removedIds.push(id);
    }
    return { kind: "changes", upserts, removedIds };
  }

  private put(id: string, agent: AgentRecord | null): void {
    if (this.needsResync || this.closed) return;
    // Re-inserting moves the id to the end, so a busy agent cannot starve the others.
    this.queue.delete(id);
    this.queue.set(id, agent);
    if (this.queue.size > this.maxQueued) {
      this.resync();
      return;
    }
    this.poke();
  }

  private poke(): void {
    this.wake?.();
  }
}

/**
 * The live agent feed of one replica. It listens on the bus (so changes made through any
 * replica arrive), collects changed agent ids, and on one shared timer re-reads them in one
 * query and hands each to the watchers of its tenant. Nothing is collected while this replica
 * has no watcher. A worker: started after the bus, stopped before it.
 */
export class AgentWatchHub implements Worker {
  readonly name = "agent-watch";
  private readonly watchers = new Set<AgentWatcher>();
  private dirty = new Set<string>();
  private unsubscribe: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private lastRefresh = Date.now();

  constructor(
    private readonly db: Kysely<Schema>,
    private readonly bus: Bus,
    private readonly logger: Logger,
    readonly options: AgentWatchOptions = DEFAULT_WATCH_OPTIONS,
  ) {}

  start(): void {
    if (this.timer) return;
    this.unsubscribe = [
      this.bus.subscribe("agent_changed", (id) => this.markDirty([id])),
      this.bus.subscribe("agents_updated", (ids) => this.markDirty(ids)),
    ];
    this.timer = setInterval(() => void this.tick(), this.options.tickMs);
    this.timer.unref();
  }

  /** Stops listening and waits for a re-read in progress. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    for (const off of this.unsubscribe) off();
    this.unsubscribe = [];
    this.drain();
    await this.flushing;
  }

  /** Number of open watches on this replica. */
  get size(): number {
    return this.watchers.size;
  }

  /** Opens a watch of a tenant's agents. */
  open(tenantId: string, filter: WatchFilter): AgentWatcher {
    const watcher = new AgentWatcher(tenantId, filter, this.options.maxQueuedPerStream, this.options.batchSize);
    this.watchers.add(watcher);
    return watcher;
  }

  /** Forgets a watch (its stream ended). */
  release(watcher: AgentWatcher): void {
    this.watchers.delete(watcher);
  }

  /** Every watcher takes a fresh snapshot (the bus lost notifications while reconnecting). */
  resync(): void {
    this.dirty.clear();
    for (const w of this.watchers) w.resync();
  }

  /** Ends every watch (shutdown): clients reconnect, to another replica if this one is gone. */
  drain(): void {
    for (const w of this.watchers) w.close();
  }

  private markDirty(ids: string[]): void {
    if (this.watchers.size === 0) return;
    for (const id of ids) if (id) this.dirty.add(id);
    if (this.dirty.size > this.options.maxDirty) this.resync();
  }

  private tick(): void {
    const now = Date.now();
    for (const w of this.watchers) w.keepalive(now, this.options.keepaliveMs);
    if (this.flushing) return;
    const refresh = this.watchers.size > 0 && now - this.lastRefresh >= this.options.refreshMs;
    if (!refresh && this.dirty.size === 0) return;
    this.flushing = (refresh ? this.refresh(now) : Promise.resolve()).then(() => this.flush()).finally(() => {
      this.flushing = undefined;
    });
  }

  /** Marks the agents that heartbeat since the last refresh as changed (one query per replica). */
  private async refresh(now: number): Promise<void> {
    const since = new Date(this.lastRefresh - this.options.tickMs);
    this.lastRefresh = now;
    const tenants = [...new Set([...this.watchers].map((w) => w.tenantId))];
    try {
      this.markDirty(await listAgentIdsSeenSince(this.db, tenants, since, this.options.maxDirty));
    } catch (err) {
      this.logger.warn({ err }, "refreshing live agent views failed");
    }
  }

  private async flush(): Promise<void> {
    if (this.dirty.size === 0) return;
    const ids = [...this.dirty];
    this.dirty = new Set();
    try {
      const tenants = [...new Set([...this.watchers].map((w) => w.tenantId))];
      for (let i = 0; i < ids.length; i += this.options.batchSize) {
        const chunk = ids.slice(i, i + this.options.batchSize);
        const agents = await getAgentsByIds(this.db, tenants, chunk);
        this.dispatch(chunk, agents);
      }
    } catch (err) {
      // The changes are lost for the watchers; a snapshot brings them back to the truth.
      this.logger.warn({ err, agents: ids.length }, "re-reading changed agents failed; watchers resynchronise");
      for (const w of this.watchers) w.resync();
    }
  }

  private dispatch(ids: string[], agents: AgentRecord[]): void {
    const byId = new Map(agents.map((a) => [a.id, a]));
    // An id not found belongs to a tenant nobody here watches: nothing is sent, so a watcher
    // never learns that another tenant's agent changed.
    for (const w of this.watchers) {
      for (const id of ids) {
        const agent = byId.get(id);
        if (agent?.tenantId === w.tenantId) w.offer(agent);
      }
    }
  }
}
