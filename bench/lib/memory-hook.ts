/**
 * Preloaded (`--expose-gc --import tsx --import ./bench/lib/memory-hook.ts`) into processes a
 * benchmark measures. On SIGUSR2 it runs a full GC twice and prints one line
 * `BENCH_MEMORY {json}` with process.memoryUsage() to stderr, so the benchmark can read memory
 * "after GC settles" without any code in the server knowing about benchmarks. With
 * BENCH_HEAP_SNAPSHOT_DIR set it also writes a V8 heap snapshot there and names it in the line.
 */
import { join } from "node:path";
import { writeHeapSnapshot } from "node:v8";

let snapshots = 0;
process.on("SIGUSR2", () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  const dir = process.env.BENCH_HEAP_SNAPSHOT_DIR;
  const snapshot = dir ? writeHeapSnapshot(join(dir, `heap-${process.pid}-${++snapshots}.heapsnapshot`)) : undefined;
  process.stderr.write(`BENCH_MEMORY ${JSON.stringify({ gc: gc !== undefined, snapshot, ...process.memoryUsage() })}\n`);
});
