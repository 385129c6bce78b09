import { promises as fs } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EventSeverity } from "../../gen/agentgateway/v1/ingest_pb.js";
import { type EventRecord, Outbox, type PointRecord } from "./outbox.js";

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "agw-outbox-test-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

let counter = 0;
const point = (value: number): PointRecord => ({ id: `p-${counter++}`, name: "cpu.utilization", labels: {}, value, s: 1_700_000_000, n: 0 });
const event = (message: string, pad = 0): EventRecord => ({
  id: `e-${counter++}`,
  type: "test.event",
  severity: EventSeverity.INFO,
  message,
  attributes: {},
  ...(pad ? { payload: Buffer.alloc(pad, 7).toString("base64") } : {}),
  s: 1_700_000_000,
  n: 0,
});

/** Drains a kind completely, the way the uploader does, returning what it saw in order. */
async function drain(outbox: Outbox, kind: "telemetry" | "events"): Promise<Array<PointRecord | EventRecord>> {
  const seen: Array<PointRecord | EventRecord> = [];
  for (;;) {
    const batch = await outbox.nextBatch(kind);
    if (!batch) return seen;
    seen.push(...batch.records);
    await outbox.complete(batch);
  }
}

describe("Outbox", () => {
  it("gives items back in append order, per kind, across restarts", async () => {
    const first = await Outbox.open(dir);
    await first.append("telemetry", [point(1), point(2)]);
    await first.append("events", [event("a")]);
    await first.append("telemetry", [point(3)]);
    await first.append("events", [event("b"), event("c")]);
    // A new process finds the same items, in the same order.
    const second = await Outbox.open(dir);
    expect(second.stats()).toMatchObject({ files: 4, points: 3, events: 3 });
    expect((await drain(second, "telemetry")).map((p) => (p as PointRecord).value)).toEqual([1, 2, 3]);
    expect((await drain(second, "events")).map((e) => (e as EventRecord).message)).toEqual(["a", "b", "c"]);
    expect(second.stats()).toMatchObject({ files: 0, bytes: 0 });
    expect(await fs.readdir(dir)).toEqual([]);
  });

  it("splits into upload-sized files (1000 points, 500 events, byte budget)", async () => {
    const outbox = await Outbox.open(dir, { maxFileBytes: 64 * 1024 });
    await outbox.append(
      "telemetry",
      Array.from({ length: 2500 }, (_, i) => point(i)),
    );
    const sizes: number[] = [];
    for (;;) {
      const batch = await outbox.nextBatch("telemetry");
      if (!batch) break;
      sizes.push(batch.records.length);
      expect(batch.bytes).toBeLessThanOrEqual(64 * 1024);
      await outbox.complete(batch);
    }
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(2500);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(1000);
    await outbox.append(
      "events",
      Array.from({ length: 1200 }, (_, i) => event(String(i))),
    );
    const batch = await outbox.nextBatch("events");
    expect(batch?.records.length).toBeLessThanOrEqual(500);
    // A 1 MiB payload travels alone when the budget is tight.
    const big = await Outbox.open(join(dir, "big"), { maxFileBytes: 2 * 1024 * 1024 });
    await big.append("events", [event("x", 1024 * 1024), event("y", 1024 * 1024)]);
    expect((await big.nextBatch("events"))?.records.length).toBe(1);
  });

  it("keeps a failed batch (release) and resends it first, with the same ids", async () => {
    const outbox = await Outbox.open(dir);
    await outbox.append("events", [event("a")]);
    await outbox.append("events", [event("b")]);
    const batch = await outbox.nextBatch("events");
    const ids = batch?.records.map((r) => r.id);
    if (batch) outbox.release(batch);
    const again = await outbox.nextBatch("events");
    expect(again?.records.map((r) => r.id)).toEqual(ids);
  });

  it("drops the oldest files when full and reports the drop as an agent.outbox.dropped event", async () => {
    const outbox = await Outbox.open(dir, { maxBytes: 20 * 1024 });
    const appended: number[] = [];
    let droppedPoints = 0;
    for (let i = 0; i < 600; i++) {
      const dropped = await outbox.append("telemetry", [point(i)]);
      appended.push(i);
      droppedPoints += dropped?.points ?? 0;
    }
    const { bytes } = outbox.stats();
    expect(bytes).toBeLessThanOrEqual(20 * 1024);
    expect(droppedPoints).toBeGreaterThan(0);
    const kept = (await drain(outbox, "telemetry")).map((p) => (p as PointRecord).value);
    // What is left is the newest, contiguous, in order: the oldest went first.
    expect(kept).toEqual(appended.slice(appended.length - kept.length));
    expect(kept.length + droppedPoints).toBe(600);
    const events = (await drain(outbox, "events")) as EventRecord[];
    expect(events.length).toBeGreaterThan(0);
    for (const e of events) {
      expect(e.type).toBe("agent.outbox.dropped");
      expect(e.severity).toBe(EventSeverity.WARNING);
    }
    // Drop events may themselves be dropped later; the counts that survive never exceed the truth.
    const reported = events.reduce((a, e) => a + Number(e.attributes.dropped_points), 0);
    expect(reported).toBeGreaterThan(0);
    expect(reported).toBeLessThanOrEqual(droppedPoints);
  });

  it("reports the exact count when one eviction makes room", async () => {
    const outbox = await Outbox.open(dir, { maxBytes: 40 * 1024 });
    await outbox.append(
      "telemetry",
      Array.from({ length: 300 }, (_, i) => point(i)),
    );
    const before = outbox.stats().bytes;
    const dropped = await outbox.append(
      "telemetry",
      Array.from({ length: 300 }, (_, i) => point(1000 + i)),
    );
    expect(before).toBeGreaterThan(20 * 1024);
    expect(dropped).toMatchObject({ points: 300, events: 0, files: 1 });
    const events = (await drain(outbox, "events")) as EventRecord[];
    expect(events).toHaveLength(1);
    expect(events[0]?.attributes).toMatchObject({ dropped_points: "300", dropped_events: "0" });
    expect(events[0]?.message).toMatch(/dropped 300 metric points and 0 events/);
  });

  it("never evicts a batch that is being uploaded", async () => {
    const outbox = await Outbox.open(dir, { maxBytes: 16 * 1024 });
    await outbox.append(
      "telemetry",
      Array.from({ length: 40 }, (_, i) => point(i)),
    );
    const inFlight = await outbox.nextBatch("telemetry");
    for (let i = 0; i < 100; i++) await outbox.append("telemetry", [point(100 + i)]);
    // The in-flight file is still there to complete.
    const names = await fs.readdir(dir);
    for (const s of inFlight?.segments ?? []) expect(names).toContain(s.name);
    if (inFlight) await outbox.complete(inFlight);
  });

  it("writes its files 0600 in a 0700 directory and leaves no temp files", async () => {
    const old = process.umask(0);
    try {
      const outbox = await Outbox.open(join(dir, "o"));
      await outbox.append("events", [event("a")]);
      expect((await fs.stat(join(dir, "o"))).mode & 0o777).toBe(0o700);
      for (const name of await fs.readdir(join(dir, "o"))) {
        expect(name).toMatch(/^\d{16}-events-1\.jsonl$/);
        expect((await fs.stat(join(dir, "o", name))).mode & 0o777).toBe(0o600);
      }
    } finally {
      process.umask(old);
    }
  });

  it("wakes a waiting uploader on append", async () => {
    const outbox = await Outbox.open(dir);
    const waiting = outbox.waitForData();
    await outbox.append("telemetry", [point(1)]);
    await waiting;
    expect(outbox.hasPending("telemetry")).toBe(true);
  });
});
