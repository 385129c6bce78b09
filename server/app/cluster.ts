import cluster, { type Worker } from "node:cluster";
import type { Logger } from "pino";
import type { Config } from "../config/config.js";

/**
 * Several gateway processes on one port of one machine (AGW_WORKERS): node:cluster's primary
 * owns the listening socket and hands each new connection to a worker in turn, and the workers
 * share PostgreSQL exactly as replicas on different machines do (LISTEN/NOTIFY bus, advisory
 * locks for the singleton background jobs), so a machine's cores all serve agents. The primary
 * serves nothing itself: it starts the first worker alone (so migrations and the first-start
 * bootstrap run once), then the others; restarts a worker that dies; and on SIGTERM/SIGINT
 * passes the signal on and waits for every worker to drain.
 */
export async function runPrimary(config: Config, logger: Logger): Promise<number> {
  const workers = new Set<Worker>();
  let stopping = false;
  const fork = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const worker = cluster.fork();
      workers.add(worker);
      worker.once("listening", () => resolve());
      worker.once("exit", (code, signal) => {
        workers.delete(worker);
        if (stopping) return;
        logger.error({ pid: worker.process.pid, code, signal }, "gateway worker exited; starting another");
        reject(new Error(`gateway worker exited with ${code ?? signal} before it listened`));
        setTimeout(() => {
          if (!stopping) fork().catch((err) => logger.error({ err }, "restarting a gateway worker failed"));
        }, 1000).unref();
      });
    });
  await fork();
  await Promise.all(Array.from({ length: config.workers - 1 }, () => fork()));
  process.stdout.write(`AgentGateway: ${config.workers} worker processes listening\n`);
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, "stopping gateway workers");
      for (const w of workers) w.process.kill(signal);
      const check = () => (workers.size === 0 ? resolve() : setTimeout(check, 50));
      check();
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
  return 0;
}

/** Whether this process should become a cluster primary (several workers configured, not a worker itself). */
export function isClusterPrimary(config: Config): boolean {
  return config.workers > 1 && cluster.isPrimary;
}
