/**
 * Preloaded (`--expose-gc --import tsx --import ./bench/lib/memory-hook.ts`) into processes a
 * benchmark measures. On SIGUSR2 it runs a full GC twice and prints one line
 * `BENCH_MEMORY {json}` with process.memoryUsage() to stderr, so the benchmark can read memory
 * "after GC settles" without any code in the server knowing about benchmarks.
 */
process.on("SIGUSR2", () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  process.stderr.write(`BENCH_MEMORY ${JSON.stringify({ gc: gc !== undefined, ...process.memoryUsage() })}\n`);
});
