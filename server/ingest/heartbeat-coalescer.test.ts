import { describe, expect, it } from "vitest";
import { HeartbeatCoalescer, type HeartbeatSink } from "./heartbeat-coalescer.js";
import type { HeartbeatReport } from "../agents/agent-presence-store.js";

const T = "00000000-0000-4000-8000-000000000001";

/** A sink that records each write and can be told to fail or to hold a write open. */
function stubSink() {
  const writes: Array<Map<string, HeartbeatReport>> = [];
  let failNext = false;
  let hold: Promise<void> | undefined;
  const sink: HeartbeatSink = {
    async write(reports) {
      if (hold) await hold;
      if (failNext) {
        failNext = false;
        throw new Error("database unavailable");
      }
      writes.push(new Map(reports));
    },
    async readVersion(agentId) {
      return agentId === "stored" ? { agentVersion: "0.9.0" } : undefined;
    },
  };
  return {
    sink,
    writes,
    failOnce: () => {
      failNext = true;
    },
    holdWrites: () => {
      let release = () => {};
      hold = new Promise((resolve) => {
        release = resolve;
      });
      return () => {
        hold = undefined;
        release();
      };
    },
  };
}

function report(seenAtMs: number, fields: Partial<HeartbeatReport> = {}): HeartbeatReport {
  return { tenantId: T, seenAt: new Date(seenAtMs), agentVersion: undefined, host: undefined, ...fields };
}

describe("HeartbeatCoalescer", () => {
  it("keeps one entry per agent and writes all of them in one batch", async () => {
    const { sink, writes } = stubSink();
    const c = new HeartbeatCoalescer(sink, { intervalMs: 60_000 });
    c.record("a", report(1, { agentVersion: "1.0.0", host: { hostname: "h1", os: "linux", arch: "x64" } }));
    c.record("a", report(2));
    c.record("b", report(3, { agentVersion: "2.0.0" }));
    expect(c.size).toBe(2);
    expect(await c.flush()).toBe(2);
    expect(writes).toHaveLength(1);
    // The newer heartbeat wins; what it left out (version, host) is kept from the older one.
    expect(writes[0]?.get("a")).toEqual(report(2, { agentVersion: "1.0.0", host: { hostname: "h1", os: "linux", arch: "x64" } }));
    expect(writes[0]?.get("b")?.agentVersion).toBe("2.0.0");
    expect(c.size).toBe(0);
    expect(await c.flush()).toBe(0);
    expect(writes).toHaveLength(1);
  });

  it("keeps the entries of a failed flush for the next one, newest winning", async () => {
    const { sink, writes, failOnce } = stubSink();
    const c = new HeartbeatCoalescer(sink, { intervalMs: 60_000 });
    c.record("a", report(1, { agentVersion: "1.0.0" }));
    c.record("b", report(1, { agentVersion: "1.0.0" }));
    failOnce();
    await expect(c.flush()).rejects.toThrow("database unavailable");
    expect(c.size).toBe(2);
    c.record("a", report(5, { agentVersion: "1.1.0" }));
    expect(await c.flush()).toBe(2);
    expect(writes[0]?.get("a")).toEqual(report(5, { agentVersion: "1.1.0" }));
    expect(writes[0]?.get("b")).toEqual(report(1, { agentVersion: "1.0.0" }));
  });

  it("merges a failed batch under heartbeats that arrived during the write", async () => {
    const { sink, writes, failOnce, holdWrites } = stubSink();
    const c = new HeartbeatCoalescer(sink, { intervalMs: 60_000 });
    c.record("a", report(1, { agentVersion: "1.0.0", host: { hostname: "old", os: "linux", arch: "x64" } }));
    const release = holdWrites();
    failOnce();
    const failing = c.flush();
    c.record("a", report(2, { host: { hostname: "new", os: "linux", arch: "x64" } }));
    // While the write is in flight, readers still see the newest report, including the batch's fields.
    expect(c.unflushed("a")).toEqual(report(2, { agentVersion: "1.0.0", host: { hostname: "new", os: "linux", arch: "x64" } }));
    release();
    await expect(failing).rejects.toThrow();
    await c.flush();
    expect(writes[0]?.get("a")).toEqual(report(2, { agentVersion: "1.0.0", host: { hostname: "new", os: "linux", arch: "x64" } }));
  });

  it("runs one flush at a time; a flush asked for meanwhile writes what arrived after", async () => {
    const { sink, writes, holdWrites } = stubSink();
    const c = new HeartbeatCoalescer(sink, { intervalMs: 60_000 });
    c.record("a", report(1));
    const release = holdWrites();
    const first = c.flush();
    c.record("b", report(2));
    const second = c.flush();
    release();
    expect(await first).toBe(1);
    expect(await second).toBe(1);
    expect(writes.map((w) => [...w.keys()])).toEqual([["a"], ["b"]]);
  });

  it("answers the reported version from memory first, then from the sink", async () => {
    const { sink } = stubSink();
    const c = new HeartbeatCoalescer(sink, { intervalMs: 60_000 });
    c.record("a", report(1, { agentVersion: "1.2.3" }));
    expect(await c.reportedVersion("a")).toBe("1.2.3");
    expect(await c.reportedVersion("stored")).toBe("0.9.0");
    expect(await c.reportedVersion("unknown")).toBe("");
  });

  it("flushes what is pending on stop", async () => {
    const { sink, writes } = stubSink();
    const c = new HeartbeatCoalescer(sink, { intervalMs: 60_000 });
    c.start();
    c.record("a", report(1));
    await c.stop();
    expect(writes).toHaveLength(1);
    expect(c.size).toBe(0);
  });
});

describe("HeartbeatCoalescer isolation and bounds", () => {
  const report = (name: string): HeartbeatReport => ({ tenantId: T, seenAt: new Date(), agentVersion: name, host: undefined });

  it("drops a report the database refuses and writes every other agent's", async () => {
    const written = new Map<string, HeartbeatReport>();
    const sink: HeartbeatSink = {
      async write(reports) {
        if ([...reports.values()].some((r) => r.agentVersion?.includes("\u0000"))) throw Object.assign(new Error("invalid byte sequence"), { code: "22021" });
        for (const [id, r] of reports) written.set(id, r);
      },
      async readVersion() {
        return undefined;
      },
    };
    const c = new HeartbeatCoalescer(sink, { intervalMs: 1000 });
    for (let i = 0; i < 50; i++) c.record(`a${i}`, report(i === 7 ? "bad\u0000" : "1.0.0"));
    expect(await c.flush()).toBe(49);
    expect(written.size).toBe(49);
    expect(written.has("a7")).toBe(false);
    expect(c.stats).toMatchObject({ written: 49, rejected: 1 });
    // Dropped for good: the next flush does not try it again.
    expect(c.size).toBe(0);
  });

  it("sheds new agents past maxPending, also when a failed flush puts its batch back", async () => {
    const { sink, failOnce } = stubSink();
    const c = new HeartbeatCoalescer(sink, { intervalMs: 1000, maxPending: 3 });
    expect([c.record("a", report("1")), c.record("b", report("1")), c.record("c", report("1"))]).toEqual([true, true, true]);
    expect(c.record("d", report("1"))).toBe(false);
    // A known agent is never shed: its entry is replaced.
    expect(c.record("a", report("2"))).toBe(true);
    failOnce();
    const flushing = c.flush();
    c.record("e", report("1"));
    await expect(flushing).rejects.toThrow("database unavailable");
    expect(c.size).toBe(3);
    expect(c.stats.shed).toBe(2);
    // Counted for the metrics: the failed flush, then a good one.
    expect(c.stats).toMatchObject({ flushes: 0, failures: 1 });
    await c.flush();
    expect(c.stats).toMatchObject({ flushes: 1, failures: 1 });
  });
});
