import { createHash, randomUUID } from "node:crypto";
import { promises as fs, type Stats } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import type { Logger } from "pino";
import { EventSeverity } from "../../gen/agentgateway/v1/ingest_pb.js";
import { ensurePrivateDir } from "./atomic-file.js";
import type { EventRecord } from "./outbox.js";

/**
 * Local event intake: other processes on the host hand events to the agent as JSON lines,
 * either over a unix socket (each line is answered, after it is durably in the outbox) or as
 * files dropped into a spool directory. Line format: docs/agent.md, "Local events".
 */

const SEVERITIES: Record<string, EventSeverity> = {
  debug: EventSeverity.DEBUG,
  info: EventSeverity.INFO,
  warn: EventSeverity.WARNING,
  warning: EventSeverity.WARNING,
  error: EventSeverity.ERROR,
  critical: EventSeverity.CRITICAL,
};
const TYPE_PATTERN = /^[A-Za-z_][A-Za-z0-9_.:/-]*$/;
const MAX_PAYLOAD = 1024 * 1024;
/** Longest accepted line: a 1 MiB payload in base64 plus the other fields. */
export const MAX_LINE_BYTES = 2 * 1024 * 1024;

/** Turns one parsed JSON line into an outbox record, or explains why not. */
export function parseLocalEvent(input: unknown, fallbackId: () => string = randomUUID): EventRecord | string {
  if (typeof input !== "object" || input === null || Array.isArray(input)) return "an event must be a JSON object";
  const o = input as Record<string, unknown>;
  if (typeof o.type !== "string" || o.type.length === 0 || o.type.length > 128 || !TYPE_PATTERN.test(o.type)) {
    return 'type: required, at most 128 characters matching ^[A-Za-z_][A-Za-z0-9_.:/-]*$ (e.g. "backup.finished")';
  }
  let severity = EventSeverity.INFO;
  if (o.severity !== undefined) {
    const s =
      typeof o.severity === "string"
        ? SEVERITIES[o.severity.toLowerCase()]
        : typeof o.severity === "number" && o.severity >= 1 && o.severity <= 5
          ? (o.severity as EventSeverity)
          : undefined;
    if (s === undefined) return "severity: one of debug, info, warning, error, critical";
    severity = s;
  }
  const message = o.message === undefined ? "" : o.message;
  if (typeof message !== "string" || message.length > 4096 || message.includes("\u0000")) return "message: a string of at most 4096 characters without NUL";
  const attributes: Record<string, string> = {};
  if (o.attributes !== undefined) {
    if (typeof o.attributes !== "object" || o.attributes === null || Array.isArray(o.attributes)) return "attributes: an object of string values";
    const entries = Object.entries(o.attributes as Record<string, unknown>);
    if (entries.length > 64) return "attributes: at most 64 pairs";
    for (const [k, v] of entries) {
      const value = typeof v === "string" ? v : typeof v === "number" || typeof v === "boolean" ? String(v) : undefined;
      if (value === undefined || k.length === 0 || k.length > 63 || value.length > 1024 || k.includes("\u0000") || value.includes("\u0000")) {
        return `attributes.${k}: keys 1-63 characters, values strings/numbers/booleans of at most 1024 characters`;
      }
      attributes[k] = value;
    }
  }
  let payload: string | undefined;
  if (o.payload_base64 !== undefined) {
    if (typeof o.payload_base64 !== "string") return "payload_base64: a base64 string";
    const bytes = Buffer.from(o.payload_base64, "base64");
    if (bytes.length > MAX_PAYLOAD) return "payload: at most 1 MiB";
    payload = bytes.toString("base64");
  } else if (o.payload !== undefined) {
    if (typeof o.payload !== "string") return "payload: a string (UTF-8), or use payload_base64";
    const bytes = Buffer.from(o.payload, "utf8");
    if (bytes.length > MAX_PAYLOAD) return "payload: at most 1 MiB";
    payload = bytes.toString("base64");
  }
  let ms = Date.now();
  if (o.occurred_at !== undefined) {
    const t = typeof o.occurred_at === "string" ? Date.parse(o.occurred_at) : typeof o.occurred_at === "number" ? o.occurred_at : Number.NaN;
    if (!Number.isFinite(t) || t < 0 || t > 253402300799000) return "occurred_at: an RFC 3339 time or epoch milliseconds";
    ms = t;
  }
  let id: string;
  if (o.id !== undefined) {
    if (typeof o.id !== "string" || o.id.length === 0 || o.id.length > 64 || o.id.includes("\u0000")) return "id: 1-64 characters";
    id = o.id;
  } else {
    id = fallbackId();
  }
  const record: EventRecord = { id, type: o.type, severity, message, attributes, s: Math.floor(ms / 1000), n: Math.round((ms % 1000) * 1_000_000) };
  if (payload !== undefined) record.payload = payload;
  return record;
}

/** Where accepted events go: resolves once they are durable. */
export type EventSink = (events: EventRecord[]) => Promise<void>;

interface Pending {
  record: EventRecord;
  done: (err?: unknown) => void;
}

/**
 * Coalesces events arriving close together into one outbox append (one fsync) — a busy
 * producer would otherwise cost a file and an fsync per line.
 */
class Batcher {
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly sink: EventSink,
    private readonly lingerMs: number,
    private readonly maxBatch: number,
  ) {}

  add(record: EventRecord): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ record, done: (err) => (err ? reject(err) : resolve()) });
      if (this.pending.length >= this.maxBatch) this.flushSoon(0);
      else this.flushSoon(this.lingerMs);
    });
  }

  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    this.pending = [];
    this.flushing = this.flushing.then(async () => {
      if (batch.length === 0) return;
      try {
        await this.sink(batch.map((p) => p.record));
        for (const p of batch) p.done();
      } catch (err) {
        for (const p of batch) p.done(err);
      }
    });
    return this.flushing;
  }

  private flushSoon(ms: number): void {
    if (this.timer && ms > 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.flush(), ms);
  }
}

/** Options of the local event source. */
export interface EventSourceOptions {
  /** Unix socket path (undefined: no socket). */
  socketPath?: string;
  /** Spool directory (undefined: no spool). */
  spoolDir?: string;
  sink: EventSink;
  logger: Logger;
  spoolIntervalMs?: number;
}

/** The unix socket and spool directory intake. */
export class LocalEventSource {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly batcher: Batcher;
  private spoolTimer: NodeJS.Timeout | undefined;
  private spoolRunning: Promise<void> | undefined;
  private stopped = false;
  /** Counters for status. */
  readonly counters = { accepted: 0, rejected: 0 };

  constructor(private readonly options: EventSourceOptions) {
    this.batcher = new Batcher(options.sink, 10, 500);
  }

  /** Starts listening; refuses if another live process holds the socket. */
  async start(): Promise<void> {
    if (this.options.socketPath) await this.listen(this.options.socketPath);
    if (this.options.spoolDir) {
      await ensurePrivateDir(this.options.spoolDir);
      const every = this.options.spoolIntervalMs ?? 1000;
      const tick = () => {
        this.spoolRunning = this.scanSpool()
          .catch((err) => this.options.logger.warn({ err }, "spool scan failed"))
          .finally(() => {
            if (!this.stopped) this.spoolTimer = setTimeout(tick, every);
          });
      };
      tick();
    }
  }

  /** Stops accepting, answers what was accepted, and removes the socket file. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.spoolTimer) clearTimeout(this.spoolTimer);
    await this.spoolRunning;
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await this.batcher.flush();
    for (const s of this.sockets) s.end();
    if (this.options.socketPath) await fs.rm(this.options.socketPath, { force: true });
  }

  private async listen(path: string): Promise<void> {
    if (await socketIsLive(path)) {
      throw new Error(`another agent is already running with this state directory (its event socket ${path} answers)`);
    }
    await fs.rm(path, { force: true });
    // allowHalfOpen: a producer may write its lines, shut down its side, and still read the answers.
    const server = createServer({ allowHalfOpen: true }, (socket) => this.onConnection(socket));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => {
        server.off("error", reject);
        resolve();
      });
    });
    await fs.chmod(path, 0o660);
    this.server = server;
  }

  private onConnection(socket: Socket): void {
    this.sockets.add(socket);
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("error", () => {}); // a producer that hangs up early is not our problem
    let buffered = "";
    // Answers go out in line order even though persisting is asynchronous.
    let answers: Promise<void> = Promise.resolve();
    const reply = (result: Promise<string>) => {
      answers = answers.then(async () => {
        const text = await result;
        if (!socket.destroyed) socket.write(`${text}\n`);
      });
    };
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      buffered += chunk;
      if (buffered.length > MAX_LINE_BYTES && !buffered.includes("\n")) {
        socket.end(`${JSON.stringify({ ok: false, error: `line longer than ${MAX_LINE_BYTES} bytes` })}\n`);
        buffered = "";
        return;
      }
      let nl = buffered.indexOf("\n");
      while (nl !== -1) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line) reply(this.accept(line));
        nl = buffered.indexOf("\n");
      }
    });
    socket.on("end", () => {
      const line = buffered.trim();
      buffered = "";
      if (line) reply(this.accept(line));
      void answers.then(() => socket.end());
    });
  }

  private async accept(line: string, fallbackId?: () => string): Promise<string> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      this.counters.rejected++;
      return JSON.stringify({ ok: false, error: "not valid JSON" });
    }
    const record = parseLocalEvent(parsed, fallbackId);
    if (typeof record === "string") {
      this.counters.rejected++;
      return JSON.stringify({ ok: false, error: record });
    }
    try {
      await this.batcher.add(record);
      this.counters.accepted++;
      return JSON.stringify({ ok: true, id: record.id });
    } catch (err) {
      this.options.logger.error({ err }, "could not persist a local event");
      return JSON.stringify({ ok: false, error: "the agent could not store the event; retry" });
    }
  }

  /**
   * Ingests spool files (`*.jsonl`, oldest name first), then deletes them. Events without an
   * id get one derived from the file and line, so a crash between "stored" and "deleted"
   * resends the same ids (duplicates the gateway drops), not new events.
   */
  private async scanSpool(): Promise<void> {
    const dir = this.options.spoolDir;
    if (!dir) return;
    const names = (await fs.readdir(dir)).filter((n) => !n.startsWith(".") && n.endsWith(".jsonl")).sort();
    for (const name of names) {
      if (this.stopped) return;
      const path = join(dir, name);
      let text: string;
      let st: Stats;
      try {
        st = await fs.stat(path);
        text = await fs.readFile(path, "utf8");
      } catch {
        continue;
      }
      const lines = text.split("\n");
      const results = lines.map((raw, i) => {
        const line = raw.trim();
        if (!line) return Promise.resolve(undefined);
        const derived = () => createHash("sha256").update(`${name}\0${st.ino}\0${st.mtimeMs}\0${i}\0${line}`).digest("hex").slice(0, 32);
        return this.accept(line, derived).then((answer) => ({ line: i + 1, answer }));
      });
      const answers = await Promise.all(results);
      let failed = false;
      for (const a of answers) {
        if (!a) continue;
        const parsed = JSON.parse(a.answer) as { ok: boolean; error?: string };
        if (!parsed.ok) {
          if (/retry/.test(parsed.error ?? "")) failed = true;
          else this.options.logger.warn({ file: name, line: a.line, error: parsed.error }, "spool line rejected");
        }
      }
      // Keep the file if storing failed, so the next scan retries it (same derived ids).
      if (!failed) await fs.rm(path, { force: true });
    }
  }
}

async function socketIsLive(path: string): Promise<boolean> {
  try {
    await fs.stat(path);
  } catch {
    return false;
  }
  return await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    const timer = setTimeout(() => {
      probe.destroy();
      resolve(false);
    }, 1000);
    probe.once("connect", () => {
      clearTimeout(timer);
      probe.end();
      resolve(true);
    });
    probe.once("error", () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/** Writes JSON lines to an agent's event socket and returns its answers (for scripts and tests). */
export async function sendLocalEvents(socketPath: string, events: unknown[], timeoutMs = 10_000): Promise<Array<{ ok: boolean; id?: string; error?: string }>> {
  return await new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let buffered = "";
    const answers: Array<{ ok: boolean; id?: string; error?: string }> = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer from ${socketPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      buffered += chunk;
      let nl = buffered.indexOf("\n");
      while (nl !== -1) {
        answers.push(JSON.parse(buffered.slice(0, nl)) as { ok: boolean; id?: string; error?: string });
        buffered = buffered.slice(nl + 1);
        nl = buffered.indexOf("\n");
      }
      if (answers.length >= events.length) {
        clearTimeout(timer);
        socket.end();
        resolve(answers);
      }
    });
    socket.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on("connect", () => {
      socket.write(events.map((e) => `${JSON.stringify(e)}\n`).join(""));
    });
  });
}
