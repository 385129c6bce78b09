/**
 * Fan-out of small notifications between the parts of one gateway and, with the PostgreSQL
 * implementation, between replicas. Payloads are pointers (ids); receivers re-read rows.
 */
export interface Bus {
  publish(topic: BusTopic, payload: string): Promise<void>;
  subscribe(topic: BusTopic, listener: (payload: string) => void): () => void;
  close(): Promise<void>;
}

/**
 * The topics the gateway uses. Keep payloads small: PostgreSQL NOTIFY caps them at 8000 bytes.
 * `agents_updated` carries comma-separated agent ids whose admin view changed without a
 * lifecycle transition (registration, liveness, reported version); only live views listen.
 */
export type BusTopic = "agent_changed" | "session_changed" | "commands_queued" | "stream_opened" | "rollout_changed" | "agents_updated";

/** In-process bus: the single-process gateway, and the local half of the PostgreSQL bus. */
export class MemoryBus implements Bus {
  private readonly listeners = new Map<BusTopic, Set<(payload: string) => void>>();

  async publish(topic: BusTopic, payload: string): Promise<void> {
    this.deliver(topic, payload);
  }

  /** Calls local listeners now; a throwing listener does not stop the others. */
  deliver(topic: BusTopic, payload: string): void {
    for (const listener of this.listeners.get(topic) ?? []) {
      try {
        listener(payload);
      } catch {
        // Listeners own their errors; one bad listener must not break delivery to the rest.
      }
    }
  }

  subscribe(topic: BusTopic, listener: (payload: string) => void): () => void {
    let set = this.listeners.get(topic);
    if (!set) {
      set = new Set();
      this.listeners.set(topic, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }
}
