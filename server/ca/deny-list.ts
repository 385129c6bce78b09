import type { Logger } from "pino";
import { isAgentActive, listInactiveAgentIds } from "../agents/agent-store.js";
import type { Bus } from "../bus/bus.js";
import type { Executor } from "../db/database.js";
import type { Worker } from "../workers/worker.js";

/**
 * The agents whose client certificates the TLS layer refuses (docs/security.md, "Deny list"):
 * every agent that is not ACTIVE. Loaded at start, then fed by the bus: `agent_changed` (what a
 * revocation publishes after commit) denies the agent AT ONCE, before the state is re-read, so a
 * revocation takes effect on every replica as soon as its notification arrives; the re-read
 * lifts it again for an agent that is ACTIVE (approved, un-revoked). A bus reconnect and a
 * periodic reload (`reloadMs`) repair anything missed.
 */
export class AgentDenyList implements Worker {
  readonly name = "certificate-deny-list";
  #denied = new Set<string>();
  #unsubscribe: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Agents announced while a reload reads the table: their newer verdict wins over the read. */
  #touched: Set<string> | undefined;
  /** Per agent, the number of the latest announcement: only the re-read it started may lift the denial. */
  readonly #latest = new Map<string, number>();
  #announcements = 0;

  constructor(
    private readonly db: Executor,
    private readonly bus: Bus,
    private readonly logger: Logger,
    private readonly reloadMs = 60_000,
  ) {}

  async start(): Promise<void> {
    this.#unsubscribe = this.bus.subscribe("agent_changed", (agentId) => this.#changed(agentId));
    await this.reload();
    this.#timer = setInterval(() => void this.reload().catch((err) => this.logger.warn({ err }, "reloading the certificate deny list failed")), this.reloadMs);
    this.#timer.unref();
  }

  /** Whether the agent's certificates are refused. */
  has(agentId: string): boolean {
    return this.#denied.has(agentId);
  }

  /** How many agents are denied. */
  get size(): number {
    return this.#denied.size;
  }

  /** Re-reads the whole list (start, bus reconnect, timer). */
  async reload(): Promise<void> {
    const touched = new Set<string>();
    this.#touched = touched;
    try {
      const next = new Set(await listInactiveAgentIds(this.db));
      for (const id of touched) {
        if (this.#denied.has(id)) next.add(id);
        else next.delete(id);
      }
      this.#denied = next;
    } finally {
      if (this.#touched === touched) this.#touched = undefined;
    }
  }

  #changed(agentId: string): void {
    this.#denied.add(agentId);
    this.#touched?.add(agentId);
    const n = ++this.#announcements;
    this.#latest.set(agentId, n);
    isAgentActive(this.db, agentId).then(
      (active) => {
        if (this.#latest.get(agentId) !== n) return;
        this.#latest.delete(agentId);
        if (active) {
          this.#denied.delete(agentId);
          this.#touched?.add(agentId);
        }
      },
      (err) => this.logger.warn({ err, agentId }, "re-reading an agent for the certificate deny list failed; it stays denied until the next reload"),
    );
  }

  async stop(): Promise<void> {
    this.#unsubscribe?.();
    clearInterval(this.#timer);
  }
}
