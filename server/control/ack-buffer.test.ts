import pino from "pino";
import { describe, expect, it } from "vitest";
import { AckBuffer } from "./ack-buffer.js";
import type { Ack } from "./command-store.js";

const ack = (n: number): Ack => ({ agentId: `agent-${n}`, tenantId: "t", sequence: n, status: "OK", reason: "" }) as Ack;

describe("AckBuffer", () => {
  it("keeps one write in flight; what arrives meanwhile is one write after it", async () => {
    let inFlight = 0;
    let most = 0;
    const writes: number[] = [];
    let release: () => void = () => {};
    const buffer = new AckBuffer(async (rows) => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      writes.push(rows.length);
      await new Promise<void>((r) => {
        release = r;
      });
      inFlight -= 1;
    }, pino({ level: "silent" }));
    // 500 acks start a write; the 1,500 that come while it runs wait for it, and go together.
    for (let i = 0; i < 500; i++) buffer.push(ack(i));
    await new Promise((r) => setImmediate(r));
    for (let i = 500; i < 2000; i++) buffer.push(ack(i));
    await new Promise((r) => setImmediate(r));
    expect(writes).toEqual([500]);
    release();
    await new Promise((r) => setImmediate(r));
    expect(writes).toEqual([500, 1500]);
    release();
    await buffer.flush();
    expect(most).toBe(1);
  });

  it("keeps a failed batch for the next write", async () => {
    let fail = true;
    const written: Ack[] = [];
    const buffer = new AckBuffer(async (rows) => {
      if (fail) throw new Error("database unreachable");
      written.push(...rows);
    }, pino({ level: "silent" }));
    for (let i = 0; i < 3; i++) buffer.push(ack(i));
    await buffer.flush();
    expect(written).toEqual([]);
    fail = false;
    buffer.push(ack(3));
    await buffer.flush();
    expect(written.map((a) => a.sequence)).toEqual([0, 1, 2, 3]);
    expect(buffer.stats).toEqual({ rejected: 0, shed: 0 });
  });
});
