/**
 * A closed-loop load: `concurrency` workers each run `op` back to back until `seconds` pass,
 * `maxOps` have started or 100 have failed (bounded in count and time), with the CPU each side
 * spent per completed op: the measured server process, the PostgreSQL cluster, this process,
 * and the share of the machine other processes took meanwhile (contamination).
 */
import { cpus } from "node:os";
import { clusterCpuSeconds, load1, machineBusySeconds } from "./proc.js";
import { summarize } from "./stats.js";

/** What one closed-loop run measured. */
export interface ClosedLoopResult {
  concurrency: number;
  ops: number;
  errors: number;
  firstError: string | undefined;
  seconds: number;
  latency: ReturnType<typeof summarize>;
  serverCpuUs: number;
  /** NaN without a PostgreSQL cluster to measure. */
  postgresCpuUs: number;
  clientCpuUs: number;
  otherShare: number;
  load: number;
}

export async function runClosedLoop(options: {
  concurrency: number;
  seconds: number;
  maxOps: number;
  server: { cpuSeconds(): number };
  postgres?: { postmasterPid?: number };
  op: (worker: number, i: number) => Promise<unknown>;
}): Promise<ClosedLoopResult> {
  const { concurrency, seconds, maxOps, server, op } = options;
  const latencies: number[] = [];
  let started = 0;
  let errors = 0;
  let firstError: string | undefined;
  const load = load1();
  const pgPid = options.postgres?.postmasterPid;
  const server0 = server.cpuSeconds();
  const pg0 = pgPid ? clusterCpuSeconds(pgPid) : Number.NaN;
  const client0 = process.cpuUsage();
  const busy0 = machineBusySeconds();
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  const worker = async (w: number) => {
    for (let i = 0; started < maxOps && performance.now() < deadline && errors < 100; i++) {
      started++;
      const s = performance.now();
      try {
        await op(w, i);
        latencies.push(performance.now() - s);
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  const elapsed = (performance.now() - t0) / 1000;
  const client = process.cpuUsage(client0);
  const busy = machineBusySeconds() - busy0;
  const ops = latencies.length;
  const serverCpu = server.cpuSeconds() - server0;
  const postgresCpu = pgPid ? clusterCpuSeconds(pgPid) - pg0 : 0;
  const clientCpu = (client.user + client.system) / 1e6;
  const perOpUs = (sec: number) => (ops ? (sec * 1e6) / ops : Number.NaN);
  return {
    concurrency,
    ops,
    errors,
    firstError,
    seconds: elapsed,
    latency: summarize(latencies),
    serverCpuUs: perOpUs(serverCpu),
    postgresCpuUs: pgPid ? perOpUs(postgresCpu) : Number.NaN,
    clientCpuUs: perOpUs(clientCpu),
    otherShare: Math.max(0, busy - serverCpu - postgresCpu - clientCpu) / (elapsed * cpus().length),
    load,
  };
}
