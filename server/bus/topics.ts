/**
 * The bus topics and their payloads. Payloads are pointers (ids): receivers re-read rows, so a
 * duplicated or reordered notification is harmless.
 */
export interface BusTopics {
  /** An agent's state changed (approved, revoked, …): the agent id. */
  agent_changed: string;
  /** An agent got a new session, ending the previous one: the agent id. */
  session_changed: string;
  /** New commands were persisted for these agents' streams. */
  commands_queued: CommandsQueued;
  /**
   * Commands of one kind and ref, up to a sequence, were withdrawn (a halted or cancelled
   * rollout): every replica drops them from what it has not handed to a stream's transport yet.
   * One notice per withdrawal, whatever the number of agents.
   */
  commands_withdrawn: CommandsWithdrawn;
  /** A stream of the agent opened on some replica; any other stream of it must close. */
  stream_opened: { agentId: string; connectionId: string };
  /** A rollout or its members changed: the rollout id. */
  rollout_changed: string;
  /**
   * These agents' admin view changed without a lifecycle transition (registration, liveness,
   * reported version or status); only live views (WatchAgents) listen. At most ~190 ids fit.
   */
  agents_updated: string[];
  /** A tenant was suspended, resumed or deleted: the tenant id. Every replica re-reads the suspended set. */
  tenant_changed: string;
}

/** Whose streams have new commands. */
export type CommandsQueued = { scope: "all" } | { scope: "tenant"; tenantId: string };

/** Which commands were withdrawn: the tenant's commands of `kind` and `ref` with a sequence up to `throughSequence`. */
export interface CommandsWithdrawn {
  tenantId: string;
  kind: string;
  ref: string;
  throughSequence: number;
}

export type BusTopic = keyof BusTopics;

/** A topic with its payload, as one value. */
export type BusMessage = { [T in BusTopic]: { topic: T; payload: BusTopics[T] } }[BusTopic];

// PostgreSQL NOTIFY caps a payload at 8000 bytes; ids are far below, so anything longer is garbage.
const MAX_TEXT = 7900;

interface Codec<P> {
  encode(payload: P): string;
  /** The payload, or undefined when the text is not one. */
  decode(text: string): P | undefined;
}

const id: Codec<string> = { encode: (v) => v, decode: (text) => (text.length > 0 ? text : undefined) };

/**
 * The text form of each payload between replicas. It is the form earlier versions sent
 * ("tenant:<id>", "<agent>|<connection>"), so replicas of both versions understand each other
 * during a rolling upgrade.
 */
const CODECS: { [T in BusTopic]: Codec<BusTopics[T]> } = {
  agent_changed: id,
  session_changed: id,
  rollout_changed: id,
  tenant_changed: id,
  commands_queued: {
    encode: (v) => (v.scope === "all" ? "all" : `tenant:${v.tenantId}`),
    decode: (text) => {
      if (text === "all") return { scope: "all" };
      if (text.startsWith("tenant:") && text.length > "tenant:".length) return { scope: "tenant", tenantId: text.slice("tenant:".length) };
      return undefined;
    },
  },
  commands_withdrawn: {
    encode: (v) => `${v.tenantId}|${v.kind}|${v.ref}|${v.throughSequence}`,
    decode: (text) => {
      const [tenantId, kind, ref, through, ...rest] = text.split("|");
      const throughSequence = Number(through);
      if (rest.length > 0 || !tenantId || !kind || !ref || !Number.isSafeInteger(throughSequence) || throughSequence <= 0) return undefined;
      return { tenantId, kind, ref, throughSequence };
    },
  },
  agents_updated: {
    encode: (v) => v.join(","),
    decode: (text) => {
      const ids = text.split(",");
      return ids.every((i) => /^[0-9a-f-]{36}$/.test(i)) ? ids : undefined;
    },
  },
  stream_opened: {
    encode: (v) => `${v.agentId}|${v.connectionId}`,
    decode: (text) => {
      const bar = text.indexOf("|");
      return bar > 0 && bar < text.length - 1 ? { agentId: text.slice(0, bar), connectionId: text.slice(bar + 1) } : undefined;
    },
  },
};

function isTopic(name: string): name is BusTopic {
  return Object.hasOwn(CODECS, name);
}

/** The wire text of a message: "<topic>|<payload>". */
export function encodeMessage<T extends BusTopic>(topic: T, payload: BusTopics[T]): string {
  const text = `${topic}|${CODECS[topic].encode(payload)}`;
  if (text.length > MAX_TEXT) throw new Error(`bus payload for ${topic} is too long (${text.length} characters)`);
  return text;
}

/** The message in a wire text, or undefined for an unknown topic or a malformed payload (dropped). */
export function decodeMessage(text: string): BusMessage | undefined {
  if (text.length > MAX_TEXT) return undefined;
  const bar = text.indexOf("|");
  if (bar <= 0) return undefined;
  const topic = text.slice(0, bar);
  if (!isTopic(topic)) return undefined;
  const payload = CODECS[topic].decode(text.slice(bar + 1));
  return payload === undefined ? undefined : ({ topic, payload } as BusMessage);
}
