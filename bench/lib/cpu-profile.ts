/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time per function, optionally only
 * for samples inside a time window. V8 stamps samples with CLOCK_MONOTONIC microseconds, the
 * same clock as process.hrtime, so a window measured in the benchmark process lines up with
 * the child's profile.
 */
import { readFileSync } from "node:fs";
import { ROOT } from "./child.js";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** One row of the summary. */
export interface SelfTime {
  name: string;
  where: string;
  ms: number;
  share: number;
}

/** Microseconds on the monotonic clock, as V8's profiler stamps samples. */
export function monotonicMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** Self time per function and per area (package or folder), top `limit` of each. */
export function summarizeProfile(
  path: string,
  window?: { fromUs: number; toUs: number },
  limit = 20,
): { totalMs: number; idleMs: number; windowed: boolean; functions: SelfTime[]; areas: SelfTime[] } {
  const profile = JSON.parse(readFileSync(path, "utf8")) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const inWindow = window !== undefined && window.fromUs >= profile.startTime && window.toUs <= profile.endTime + 1_000_000;
  const selfUs = new Map<number, number>();
  let t = profile.startTime;
  let total = 0;
  let idle = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    t += delta;
    if (inWindow && (t < window.fromUs || t > window.toUs)) continue;
    // A sample's weight is the time until the next sample.
    const weight = profile.timeDeltas[i + 1] ?? delta;
    const id = profile.samples[i] ?? 0;
    // Idle time is not CPU time: keep it out of the shares.
    if (byId.get(id)?.callFrame.functionName === "(idle)") {
      idle += weight;
      continue;
    }
    selfUs.set(id, (selfUs.get(id) ?? 0) + weight);
    total += weight;
  }
  const fn = new Map<string, SelfTime>();
  const area = new Map<string, SelfTime>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = shortUrl(url);
    const name = functionName || (url ? "(anonymous)" : "(native)");
    const key = `${name}@${where}:${lineNumber + 1}`;
    const row = fn.get(key) ?? { name, where: url ? `${where}:${lineNumber + 1}` : "", ms: 0, share: 0 };
    row.ms += us / 1000;
    fn.set(key, row);
    const a = areaOf(url, name);
    const arow = area.get(a) ?? { name: a, where: "", ms: 0, share: 0 };
    arow.ms += us / 1000;
    area.set(a, arow);
  }
  const finish = (m: Map<string, SelfTime>) =>
    [...m.values()]
      .map((r) => ({ ...r, share: total ? (r.ms * 1000) / total : 0 }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, limit);
  return { totalMs: total / 1000, idleMs: idle / 1000, windowed: inWindow, functions: finish(fn), areas: finish(area) };
}

function shortUrl(url: string): string {
  if (!url) return "";
  let u = url.replace(/^file:\/\//, "");
  if (u.startsWith(ROOT)) u = u.slice(ROOT.length);
  const nm = u.lastIndexOf("node_modules/");
  if (nm !== -1) u = u.slice(nm + "node_modules/".length);
  return u.replace(/^\/+/, "");
}

/** The package, repository folder or runtime part a function belongs to. */
function areaOf(url: string, name: string): string {
  if (!url) {
    if (name === "(garbage collector)") return "GC";
    if (name === "(idle)") return "idle";
    if (name === "(program)") return "V8/native (program)";
    return `native: ${name}`;
  }
  if (url.startsWith("node:")) return url.split("/").slice(0, 2).join("/");
  const short = shortUrl(url);
  if (url.includes("node_modules/")) {
    const parts = short.split("/");
    return parts[0]?.startsWith("@") ? `${parts[0]}/${parts[1]}` : (parts[0] ?? short);
  }
  const parts = short.split("/");
  return parts.length > 2 ? `${parts[0]}/${parts[1]}` : (parts[0] ?? short);
}
