import type { Worker } from "../workers/worker.js";
import type { BusMessage, BusTopic, BusTopics } from "./topics.js";

export type { BusTopic, BusTopics, CommandsQueued, CommandsWithdrawn } from "./topics.js";

/**
 * Fan-out of small notifications between the parts of one gateway and, with the PostgreSQL
 * implementation, between replicas. Each topic has one payload type (server/bus/topics.ts).
 * A worker: started before the gateway listens, stopped after everything that publishes.
 */
export interface Bus extends Worker {
  publish<T extends BusTopic>(topic: T, payload: BusTopics[T]): Promise<void>;
  subscribe<T extends BusTopic>(topic: T, listener: (payload: BusTopics[T]) => void): () => void;
  /**
   * For a notification that must go out exactly when a statement commits, without a round trip
   * of its own: the arguments of a `pg_notify(channel, text)` to run inside that statement, or
   * undefined when this bus does not go through PostgreSQL. After the commit, call
   * `deliverLocal()` either way (for undefined, that is the whole publish).
   */
  statementNotification<T extends BusTopic>(topic: T, payload: BusTopics[T]): StatementNotification | undefined;
  /** Delivers to this process's listeners only (the local half of a publish). */
  deliverLocal<T extends BusTopic>(topic: T, payload: BusTopics[T]): void;
}

/** A NOTIFY to run inside a statement (see Bus.statementNotification). */
export interface StatementNotification {
  channel: string;
  text: string;
}

type AnyListener = (payload: BusTopics[BusTopic]) => void;

/** In-process bus: the single-process gateway, and the local half of the PostgreSQL bus. */
export class MemoryBus implements Bus {
  readonly name = "bus";
  private readonly listeners = new Map<BusTopic, Set<AnyListener>>();

  start(): void {}

  async publish<T extends BusTopic>(topic: T, payload: BusTopics[T]): Promise<void> {
    this.deliver({ topic, payload } as BusMessage);
  }

  statementNotification(): undefined {
    return undefined;
  }

  deliverLocal<T extends BusTopic>(topic: T, payload: BusTopics[T]): void {
    this.deliver({ topic, payload } as BusMessage);
  }

  /** Calls local listeners now; a throwing listener does not stop the others. */
  deliver(message: BusMessage): void {
    for (const listener of this.listeners.get(message.topic) ?? []) {
      try {
        listener(message.payload);
      } catch {
        // Listeners own their errors; one bad listener must not break delivery to the rest.
      }
    }
  }

  subscribe<T extends BusTopic>(topic: T, listener: (payload: BusTopics[T]) => void): () => void {
    let set = this.listeners.get(topic);
    if (!set) {
      set = new Set();
      this.listeners.set(topic, set);
    }
    // Stored per topic, so a listener only ever receives its own topic's payload type.
    const stored = listener as AnyListener;
    set.add(stored);
    return () => set.delete(stored);
  }

  async stop(): Promise<void> {
    this.listeners.clear();
  }
}
