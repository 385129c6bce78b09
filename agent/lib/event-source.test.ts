import { promises as fs } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { sendLocalEvents } from "./event-socket.js";
import { LocalEventSource } from "./event-source.js";
import type { EventRecord } from "./outbox.js";

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "agw-events-test-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("LocalEventSource", () => {
  it("answers each socket line after it is stored, in order", async () => {
    const stored: EventRecord[] = [];
    const source = new LocalEventSource({
      socketPath: join(dir, "events.sock"),
      sink: async (events) => void stored.push(...events),
      logger: pino({ level: "silent" }),
    });
    await source.start();
    try {
      const answers = await sendLocalEvents(join(dir, "events.sock"), [
        { type: "a.b", message: "1" },
        { nope: true },
        { type: "a.b", message: "3", id: "mine" },
      ]);
      expect(answers.map((a) => a.ok)).toEqual([true, false, true]);
      expect(answers[2]?.id).toBe("mine");
      expect(stored.map((e) => e.message)).toEqual(["1", "3"]);
      // A second agent on the same directory is refused while this one runs.
      const second = new LocalEventSource({ socketPath: join(dir, "events.sock"), sink: async () => {}, logger: pino({ level: "silent" }) });
      await expect(second.start()).rejects.toThrow(/already running/);
    } finally {
      await source.stop();
    }
    await expect(fs.stat(join(dir, "events.sock"))).rejects.toThrow();
  });

  it("ingests spool files with ids derived from file and line (a rescan resends the same ids)", async () => {
    const spool = join(dir, "spool");
    await fs.mkdir(spool);
    await fs.writeFile(join(spool, "001.jsonl"), '{"type":"x.one"}\n{"type":"x.two"}\n');
    const first: EventRecord[] = [];
    let fail = true;
    const source = new LocalEventSource({
      spoolDir: spool,
      spoolIntervalMs: 20,
      sink: async (events) => {
        first.push(...events);
        if (fail) {
          fail = false;
          throw new Error("disk full");
        }
      },
      logger: pino({ level: "silent" }),
    });
    await source.start();
    for (let i = 0; i < 200 && (await fs.readdir(spool)).includes("001.jsonl"); i++) await new Promise((r) => setTimeout(r, 20));
    await source.stop();
    expect(await fs.readdir(spool)).toEqual([]);
    // The first attempt failed to store and was retried with the very same ids.
    expect(first).toHaveLength(4);
    expect(first[2]?.id).toBe(first[0]?.id);
    expect(first[3]?.id).toBe(first[1]?.id);
    expect(first[0]?.id).not.toBe(first[1]?.id);
  });
});
