import { afterEach, describe, expect, it, vi } from "vitest";
import { periodicWorker, startWorkers, type Worker } from "./worker.js";

function recorder() {
  const log: string[] = [];
  const worker = (name: string, opts: { failStart?: boolean; failStop?: boolean; slowStart?: boolean } = {}): Worker => ({
    name,
    async start() {
      if (opts.slowStart) await new Promise((r) => setTimeout(r, 5));
      log.push(`start ${name}`);
      if (opts.failStart) throw new Error(`${name} cannot start`);
    },
    async stop() {
      log.push(`stop ${name}`);
      if (opts.failStop) throw new Error(`${name} cannot stop`);
    },
  });
  const warnings: unknown[] = [];
  const logger = { warn: (obj: unknown) => void warnings.push(obj) };
  return { log, worker, warnings, logger };
}

describe("startWorkers", () => {
  it("starts in order, one after another, and stops in reverse order", async () => {
    const r = recorder();
    const running = await startWorkers([r.worker("bus", { slowStart: true }), r.worker("flusher"), r.worker("sweeper")], r.logger);
    expect(running.names).toEqual(["bus", "flusher", "sweeper"]);
    expect(r.log).toEqual(["start bus", "start flusher", "start sweeper"]);
    await running.stop();
    expect(r.log.slice(3)).toEqual(["stop sweeper", "stop flusher", "stop bus"]);
  });

  it("when a start fails, stops the ones already started in reverse, never the rest, and rethrows", async () => {
    const r = recorder();
    const attempt = startWorkers([r.worker("bus"), r.worker("flusher"), r.worker("verifier", { failStart: true }), r.worker("sweeper")], r.logger);
    await expect(attempt).rejects.toThrow("worker verifier failed to start");
    await attempt.catch((err: Error) => expect((err.cause as Error).message).toBe("verifier cannot start"));
    expect(r.log).toEqual(["start bus", "start flusher", "start verifier", "stop flusher", "stop bus"]);
  });

  it("keeps stopping the others when one fails to stop, logs it, and stops only once", async () => {
    const r = recorder();
    const running = await startWorkers([r.worker("bus"), r.worker("flusher", { failStop: true }), r.worker("sweeper")], r.logger);
    await Promise.all([running.stop(), running.stop()]);
    await running.stop();
    expect(r.log.slice(3)).toEqual(["stop sweeper", "stop flusher", "stop bus"]);
    expect(r.warnings).toEqual([expect.objectContaining({ worker: "flusher" })]);
  });
});

describe("periodicWorker", () => {
  afterEach(() => vi.useRealTimers());

  it("runs the task every interval without overlap, survives a failing run, and stop waits for a run in progress", async () => {
    vi.useFakeTimers();
    let runs = 0;
    let concurrent = 0;
    let maxConcurrent = 0;
    let release: (() => void) | undefined;
    const warnings: unknown[] = [];
    const worker = periodicWorker({
      name: "sweeper",
      intervalMs: 100,
      logger: { warn: (obj: unknown) => void warnings.push(obj) },
      task: async () => {
        runs++;
        concurrent++;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        try {
          if (runs === 1) throw new Error("database blip");
          if (runs === 3) await new Promise<void>((r) => (release = r));
        } finally {
          concurrent--;
        }
      },
    });
    worker.start();
    await vi.advanceTimersByTimeAsync(99);
    expect(runs).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(runs).toBe(1);
    expect(warnings).toEqual([expect.objectContaining({ worker: "sweeper" })]);
    await vi.advanceTimersByTimeAsync(200);
    expect(runs).toBe(3);
    // Run 3 hangs: no run 4 while it is in progress, however long it takes.
    await vi.advanceTimersByTimeAsync(1000);
    expect(runs).toBe(3);
    let stopped = false;
    const stopping = worker.stop().then(() => (stopped = true));
    await vi.advanceTimersByTimeAsync(0);
    expect(stopped).toBe(false);
    release?.();
    await stopping;
    await vi.advanceTimersByTimeAsync(1000);
    expect(runs).toBe(3);
    expect(maxConcurrent).toBe(1);
  });
});
