import type { Logger } from "pino";

/**
 * A piece of background work (a flusher, a sweeper, the bus) whose lifetime the composition
 * root drives: started in order before the gateway listens, stopped in reverse after it stopped
 * taking calls. Metrics and tracing attach here, at one seam for all of them.
 */
export interface Worker {
  /** Short, stable, for logs: "heartbeat-flusher". */
  readonly name: string;
  /** Starts the work; resolves once it runs (e.g. the bus listens). Throwing aborts the start-up. */
  start(): Promise<void> | void;
  /** Stops the work and waits for what is in flight (a final flush, a running sweep). */
  stop(): Promise<void>;
}

/** Workers that were started; `stop()` stops them in reverse order, once. */
export interface RunningWorkers {
  readonly names: readonly string[];
  stop(): Promise<void>;
}

/**
 * Starts `workers` one after another, in order. If one fails to start, the ones already started
 * are stopped in reverse order and the error is rethrown, so a failed start-up leaves nothing
 * running. Stopping never throws: a worker that fails to stop is logged and the rest still stop.
 */
export async function startWorkers(workers: readonly Worker[], logger?: Pick<Logger, "warn">): Promise<RunningWorkers> {
  const started: Worker[] = [];
  const stopAll = async () => {
    for (const worker of [...started].reverse()) {
      try {
        await worker.stop();
      } catch (err) {
        logger?.warn({ err, worker: worker.name }, "worker failed to stop");
      }
    }
  };
  for (const worker of workers) {
    try {
      await worker.start();
    } catch (err) {
      await stopAll();
      throw new Error(`worker ${worker.name} failed to start`, { cause: err });
    }
    started.push(worker);
  }
  let stopping: Promise<void> | undefined;
  return {
    names: started.map((w) => w.name),
    stop: () => {
      stopping ??= stopAll();
      return stopping;
    },
  };
}

/**
 * A worker that runs `task` every `intervalMs`. Runs never overlap: the next is scheduled when
 * the previous one ended. A failing run is logged and the schedule goes on; `stop()` waits for
 * a run in progress.
 */
export function periodicWorker(options: { name: string; intervalMs: number; task: () => Promise<unknown>; logger?: Pick<Logger, "warn"> }): Worker {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = true;
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = options
        .task()
        .then(
          () => undefined,
          (err) => options.logger?.warn({ err, worker: options.name }, `${options.name} run failed`),
        )
        .finally(() => {
          running = undefined;
          schedule();
        });
    }, options.intervalMs);
    timer.unref();
  };
  return {
    name: options.name,
    start() {
      if (!stopped) return;
      stopped = false;
      schedule();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
      await running;
    },
  };
}
