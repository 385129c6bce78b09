import { defineConfig } from "vitest/config";

// One PostgreSQL server for the whole run (test/support/global-setup.ts); each integration
// suite creates its own database in it. Integration suites spawn servers, so they get time.
export default defineConfig({
  test: {
    globalSetup: ["test/support/global-setup.ts"],
    include: ["client/**/*.test.ts", "server/**/*.test.ts", "agent/**/*.test.ts", "cli/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    maxWorkers: 2,
  },
});
