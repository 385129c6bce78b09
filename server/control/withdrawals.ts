import type { CommandsWithdrawn } from "../bus/bus.js";
import type { Outgoing } from "./connection.js";

/** Withdrawals remembered for deliveries whose read began before them (only that race needs them: the rows are acked). */
const WITHDRAWALS_KEPT = 1024;

/** Where a message built for one agent's own command came from: what a withdrawal is matched on. */
export interface CommandOrigin {
  tenantId: string;
  kind: string;
  ref: string | null;
  sequence: number;
}

/**
 * The hub's memory of recent withdrawals (a halted or cancelled rollout's directives), and of
 * where each command message it built came from, so that a withdrawn command still waiting in
 * memory (held while a stream registers, queued in a sink, or read from the table just before
 * the withdrawal committed) is dropped instead of written. Bounded: the oldest withdrawals are
 * forgotten first, which only matters for a read older than a thousand withdrawals.
 */
export class Withdrawals {
  private readonly origins = new WeakMap<Outgoing, CommandOrigin>();
  /** "tenant|kind|ref" → withdrawn through this sequence, oldest first. */
  private readonly through = new Map<string, number>();
  /** Selects the messages a withdrawal took back (for AgentConnection.withdraw). */
  readonly drop = (message: Outgoing): boolean => {
    const origin = this.origins.get(message);
    return origin !== undefined && this.isWithdrawn(origin);
  };

  /** Remembers a withdrawal (a later one of the same ref only raises its sequence). */
  record(withdrawn: CommandsWithdrawn): void {
    const key = keyOf(withdrawn.tenantId, withdrawn.kind, withdrawn.ref);
    const through = Math.max(this.through.get(key) ?? 0, withdrawn.throughSequence);
    this.through.delete(key);
    this.through.set(key, through);
    if (this.through.size > WITHDRAWALS_KEPT) {
      const oldest = this.through.keys().next().value;
      if (oldest !== undefined) this.through.delete(oldest);
    }
  }

  /** Whether a command from this origin was withdrawn (a re-issue has a higher sequence and is not). */
  isWithdrawn(origin: CommandOrigin): boolean {
    if (origin.ref === null) return false;
    const through = this.through.get(keyOf(origin.tenantId, origin.kind, origin.ref));
    return through !== undefined && origin.sequence <= through;
  }

  /** Notes where a message came from, for drop(). */
  tag(message: Outgoing, origin: CommandOrigin): void {
    this.origins.set(message, origin);
  }
}

function keyOf(tenantId: string, kind: string, ref: string): string {
  return `${tenantId}|${kind}|${ref}`;
}
