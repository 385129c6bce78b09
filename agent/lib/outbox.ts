import { randomUUID } from "node:crypto";
import { constants, promises as fs } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import { EventSeverity } from "../../gen/agentgateway/v1/ingest_pb.js";
import { ensurePrivateDir, fsyncDir, PRIVATE_FILE_MODE, removeStaleTempFiles } from "./atomic-file.js";

/**
 * The on-disk outbox: every metric point and event goes through it, so nothing is lost while
 * the gateway is unreachable or the agent restarts.
 *
 * Layout: one JSON-lines file per appended chunk, named `<seq>-<kind>-<count>.jsonl` with a
 * zero-padded sequence shared by both kinds. A file is written to a temp name, fsynced and
 * renamed, so it is either complete or absent; it is deleted only after the gateway accepted
 * its items. Each kind is uploaded in sequence order. Items carry client-generated ids, so a
 * crash between "uploaded" and "deleted" just causes a resend the gateway counts as duplicates.
 *
 * The total size is bounded: appending to a full outbox deletes the oldest files first, and
 * the loss is itself reported as an `agent.outbox.dropped` event (with counts) in its place.
 */
export type OutboxKind = "telemetry" | "events";

/** A metric point as stored (timestamps as seconds + nanos). */
export interface PointRecord {
  id: string;
  name: string;
  labels: Record<string, string>;
  value: number;
  s: number;
  n: number;
}

/** An event as stored (payload base64, timestamps as seconds + nanos). */
export interface EventRecord {
  id: string;
  type: string;
  severity: EventSeverity;
  message: string;
  attributes: Record<string, string>;
  payload?: string;
  s: number;
  n: number;
}

/** Record type by kind. */
export type RecordOf<K extends OutboxKind> = K extends "telemetry" ? PointRecord : EventRecord;

/** One file of the outbox. */
interface Segment {
  seq: number;
  kind: OutboxKind;
  count: number;
  bytes: number;
  name: string;
}

/** Items read for one upload call; `complete()` it after the gateway accepted them. */
export interface Batch<K extends OutboxKind = OutboxKind> {
  kind: K;
  records: Array<RecordOf<K>>;
  bytes: number;
  segments: readonly Segment[];
}

/** What an append had to drop to stay within the size bound. */
export interface DropReport {
  points: number;
  events: number;
  bytes: number;
  files: number;
}

/** Size and count limits. */
export interface OutboxOptions {
  /** Bound on the bytes of all files (default 64 MiB). */
  maxBytes: number;
  /** Items per file (and per upload call): the gateway's limits are 1000 points, 500 events. */
  maxItems: Record<OutboxKind, number>;
  /** Bytes per file (and per upload call), well under the gateway's 4 MiB message limit. */
  maxFileBytes: number;
  logger?: Logger;
}

/** Defaults matching the gateway's limits (ingest.proto). */
export const DEFAULT_OUTBOX_OPTIONS: OutboxOptions = {
  maxBytes: 64 * 1024 * 1024,
  maxItems: { telemetry: 1000, events: 500 },
  maxFileBytes: 3 * 1024 * 1024,
};

/** Room kept free for the drop event written after an eviction. */
const DROP_EVENT_RESERVE = 1024;
const NAME_PATTERN = /^(\d{16})-(telemetry|events)-(\d+)\.jsonl$/;

/** The outbox of one state directory. */
export class Outbox {
  private readonly segments: Segment[] = [];
  private readonly inFlight = new Set<string>();
  private totalBytes = 0;
  private nextSeq = 1;
  private droppedTotal = 0;
  private appendChain: Promise<unknown> = Promise.resolve();
  private readonly waiters = new Set<() => void>();

  private constructor(
    readonly dir: string,
    readonly options: OutboxOptions,
  ) {}

  /** Opens (creating if needed) the outbox directory and indexes what a previous run left. */
  static async open(dir: string, options: Partial<OutboxOptions> = {}): Promise<Outbox> {
    const outbox = new Outbox(dir, { ...DEFAULT_OUTBOX_OPTIONS, ...options, maxItems: { ...DEFAULT_OUTBOX_OPTIONS.maxItems, ...options.maxItems } });
    await ensurePrivateDir(dir);
    await removeStaleTempFiles(dir);
    for (const name of await fs.readdir(dir)) {
      const match = NAME_PATTERN.exec(name);
      if (!match) continue;
      const st = await fs.stat(join(dir, name));
      outbox.segments.push({ seq: Number(match[1]), kind: match[2] as OutboxKind, count: Number(match[3]), bytes: st.size, name });
      outbox.totalBytes += st.size;
    }
    outbox.segments.sort((a, b) => a.seq - b.seq);
    outbox.nextSeq = (outbox.segments.at(-1)?.seq ?? 0) + 1;
    return outbox;
  }

  /** Counts of what is waiting, for status and heartbeats. */
  stats(): { files: number; bytes: number; points: number; events: number; droppedTotal: number } {
    let points = 0;
    let events = 0;
    for (const s of this.segments) {
      if (s.kind === "telemetry") points += s.count;
      else events += s.count;
    }
    return { files: this.segments.length, bytes: this.totalBytes, points, events, droppedTotal: this.droppedTotal };
  }

  /** Whether anything of `kind` (or of any kind) is waiting and not already being uploaded. */
  hasPending(kind?: OutboxKind): boolean {
    return this.segments.some((s) => (kind === undefined || s.kind === kind) && !this.inFlight.has(s.name));
  }

  /** Resolves on the next append (or when `signal` aborts). */
  waitForData(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.waiters.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      this.waiters.add(done);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  /**
   * Durably appends records (split into files of at most maxItems / maxFileBytes). Resolves
   * once they are fsynced: only then may a producer be told its item is safe. Evicts the
   * oldest files if needed and reports what was dropped.
   */
  append<K extends OutboxKind>(kind: K, records: ReadonlyArray<RecordOf<K>>): Promise<DropReport | undefined> {
    const run = this.appendChain.then(() => this.appendNow(kind, records));
    this.appendChain = run.catch(() => {});
    return run;
  }

  /**
   * Reads the oldest files of a kind, as many as fit one upload call. The files stay on disk
   * until `complete`; `release` makes them available again after a failed upload.
   */
  async nextBatch<K extends OutboxKind>(kind: K): Promise<Batch<K> | undefined> {
    const limitItems = this.options.maxItems[kind];
    const picked: Segment[] = [];
    let items = 0;
    let bytes = 0;
    for (const s of this.segments) {
      if (s.kind !== kind) continue;
      if (this.inFlight.has(s.name)) break; // keep order: never skip past an in-flight file
      if (picked.length > 0 && (items + s.count > limitItems || bytes + s.bytes > this.options.maxFileBytes)) break;
      picked.push(s);
      items += s.count;
      bytes += s.bytes;
    }
    if (picked.length === 0) return undefined;
    for (const s of picked) this.inFlight.add(s.name);
    const records: Array<RecordOf<K>> = [];
    const good: Segment[] = [];
    for (const s of picked) {
      try {
        const text = await fs.readFile(join(this.dir, s.name), "utf8");
        for (const line of text.split("\n")) {
          if (line) records.push(JSON.parse(line) as RecordOf<K>);
        }
        good.push(s);
      } catch (err) {
        // A file we cannot read back is lost: say so (as a drop) instead of blocking the queue.
        this.options.logger?.error({ err, file: s.name }, "outbox file unreadable; dropping it");
        this.inFlight.delete(s.name);
        await this.deleteSegments([s]);
        await this.append("events", [
          dropEvent(
            { points: s.kind === "telemetry" ? s.count : 0, events: s.kind === "events" ? s.count : 0, bytes: s.bytes, files: 1 },
            this.options.maxBytes,
            "unreadable outbox file",
          ),
        ]);
      }
    }
    if (good.length === 0) return this.nextBatch(kind);
    return { kind, records, bytes, segments: good };
  }

  /** The batch was accepted by the gateway: delete its files. */
  async complete(batch: Batch): Promise<void> {
    for (const s of batch.segments) this.inFlight.delete(s.name);
    await this.deleteSegments(batch.segments);
  }

  /** The upload failed: the files stay and are retried first. */
  release(batch: Batch): void {
    for (const s of batch.segments) this.inFlight.delete(s.name);
  }

  private async appendNow<K extends OutboxKind>(kind: K, input: ReadonlyArray<RecordOf<K>>): Promise<DropReport | undefined> {
    if (input.length === 0) return undefined;
    let lines = input.map((r) => `${JSON.stringify(r)}\n`);
    let sizes = lines.map((l) => Buffer.byteLength(l));
    const dropped: DropReport = { points: 0, events: 0, bytes: 0, files: 0 };
    const budget = this.options.maxBytes - DROP_EVENT_RESERVE;
    // A single append larger than the whole outbox keeps its newest items.
    let incoming = sizes.reduce((a, b) => a + b, 0);
    let cut = 0;
    while (incoming > budget && cut < lines.length) {
      incoming -= sizes[cut] ?? 0;
      dropped.bytes += sizes[cut] ?? 0;
      if (kind === "telemetry") dropped.points++;
      else dropped.events++;
      cut++;
    }
    if (cut > 0) {
      lines = lines.slice(cut);
      sizes = sizes.slice(cut);
    }
    // Evict the oldest files (not ones being uploaded right now) until the new ones fit.
    const evict: Segment[] = [];
    let projected = this.totalBytes + incoming;
    for (const s of this.segments) {
      if (projected <= budget) break;
      if (this.inFlight.has(s.name)) continue;
      evict.push(s);
      projected -= s.bytes;
      dropped.bytes += s.bytes;
      dropped.files++;
      if (s.kind === "telemetry") dropped.points += s.count;
      else dropped.events += s.count;
    }
    if (evict.length > 0) await this.deleteSegments(evict);
    const written: Segment[] = [];
    if (dropped.points + dropped.events > 0) {
      this.droppedTotal += dropped.points + dropped.events;
      this.options.logger?.warn({ ...dropped, maxBytes: this.options.maxBytes }, "outbox full: dropped the oldest items");
      const line = `${JSON.stringify(dropEvent(dropped, this.options.maxBytes, "outbox full"))}\n`;
      written.push(await this.writeSegment("events", [line]));
    }
    // Split into files that each fit one upload call.
    const maxItems = this.options.maxItems[kind];
    let chunk: string[] = [];
    let chunkBytes = 0;
    for (let i = 0; i < lines.length; i++) {
      const size = sizes[i] ?? 0;
      if (chunk.length > 0 && (chunk.length >= maxItems || chunkBytes + size > this.options.maxFileBytes)) {
        written.push(await this.writeSegment(kind, chunk));
        chunk = [];
        chunkBytes = 0;
      }
      chunk.push(lines[i] ?? "");
      chunkBytes += size;
    }
    if (chunk.length > 0) written.push(await this.writeSegment(kind, chunk));
    await fsyncDir(this.dir);
    for (const s of written) {
      this.segments.push(s);
      this.totalBytes += s.bytes;
    }
    for (const wake of [...this.waiters]) wake();
    return dropped.points + dropped.events > 0 ? dropped : undefined;
  }

  private async writeSegment(kind: OutboxKind, lines: string[]): Promise<Segment> {
    const seq = this.nextSeq++;
    const name = `${String(seq).padStart(16, "0")}-${kind}-${lines.length}.jsonl`;
    const data = lines.join("");
    const tmp = join(this.dir, `.${name}.tmp`);
    const handle = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, PRIVATE_FILE_MODE);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, join(this.dir, name));
    return { seq, kind, count: lines.length, bytes: Buffer.byteLength(data), name };
  }

  private async deleteSegments(list: readonly Segment[]): Promise<void> {
    const names = new Set(list.map((s) => s.name));
    for (let i = this.segments.length - 1; i >= 0; i--) {
      const s = this.segments[i];
      if (s && names.has(s.name)) {
        this.segments.splice(i, 1);
        this.totalBytes -= s.bytes;
      }
    }
    await Promise.all([...names].map((n) => fs.rm(join(this.dir, n), { force: true })));
    await fsyncDir(this.dir);
  }
}

/** The `agent.outbox.dropped` event that stands in for dropped items. */
export function dropEvent(dropped: DropReport, maxBytes: number, why: string): EventRecord {
  const now = Date.now();
  return {
    id: randomUUID(),
    type: "agent.outbox.dropped",
    severity: EventSeverity.WARNING,
    message: `${why}: dropped ${dropped.points} metric points and ${dropped.events} events (${dropped.bytes} bytes), oldest first`,
    attributes: {
      dropped_points: String(dropped.points),
      dropped_events: String(dropped.events),
      dropped_bytes: String(dropped.bytes),
      dropped_files: String(dropped.files),
      outbox_max_bytes: String(maxBytes),
    },
    s: Math.floor(now / 1000),
    n: (now % 1000) * 1_000_000,
  };
}
