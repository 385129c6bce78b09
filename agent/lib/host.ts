import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import * as os from "node:os";
import type { HostInfo } from "./direct.js";
import type { PointRecord } from "./outbox.js";

/** Host facts as Register and UploadHeartbeat report them. */
export function hostFacts(agentVersion: string, labels: Record<string, string>): Required<HostInfo> {
  return {
    hostname: os.hostname().slice(0, 253),
    os: os.platform(),
    arch: os.arch(),
    agentVersion: agentVersion.slice(0, 64),
    labels,
  };
}

/** CPU time counters summed over all cores. */
interface CpuTimes {
  busy: number;
  total: number;
}

function cpuTimes(): CpuTimes {
  let busy = 0;
  let total = 0;
  for (const cpu of os.cpus()) {
    const t = cpu.times;
    const all = t.user + t.nice + t.sys + t.idle + t.irq;
    total += all;
    busy += all - t.idle;
  }
  return { busy, total };
}

/** Available memory: MemAvailable on Linux (what a new process can get), else os.freemem(). */
function availableMemory(): number {
  if (process.platform === "linux") {
    try {
      const match = /^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync("/proc/meminfo", "utf8"));
      if (match?.[1]) return Number(match[1]) * 1024;
    } catch {
      // fall through
    }
  }
  return os.freemem();
}

/**
 * The built-in host collector (node:os only): CPU utilization since the previous sample,
 * memory, load averages and uptime, plus the agent's own RSS. Each call returns one sample.
 */
export class HostCollector {
  private previous: CpuTimes = cpuTimes();

  /** One sample of every metric, stamped now, with fresh client-generated ids. */
  sample(extra: Record<string, number> = {}): PointRecord[] {
    const now = Date.now();
    const s = Math.floor(now / 1000);
    const n = (now % 1000) * 1_000_000;
    const current = cpuTimes();
    const dTotal = current.total - this.previous.total;
    const cpu = dTotal > 0 ? (current.busy - this.previous.busy) / dTotal : 0;
    this.previous = current;
    const total = os.totalmem();
    const available = availableMemory();
    const [load1, load5, load15] = os.loadavg();
    const values: Record<string, number> = {
      "cpu.utilization": clamp01(cpu),
      "cpu.count": os.cpus().length,
      "memory.total_bytes": total,
      "memory.available_bytes": available,
      "memory.used_ratio": total > 0 ? clamp01((total - available) / total) : 0,
      "load.1m": load1 ?? 0,
      "load.5m": load5 ?? 0,
      "load.15m": load15 ?? 0,
      "host.uptime_seconds": os.uptime(),
      "agent.rss_bytes": process.memoryUsage.rss(),
      ...extra,
    };
    return Object.entries(values)
      .filter(([, v]) => Number.isFinite(v))
      .map(([name, value]) => ({ id: randomUUID(), name, labels: {}, value, s, n }));
  }
}

function clamp01(x: number): number {
  return Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0;
}
