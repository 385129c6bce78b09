import { defineConfig } from "vitest/config";

// Two projects. `unit`: tests beside the code, no database, no network beyond loopback
// (`npm run test:unit`). `integration`: test/**, real servers on one real PostgreSQL for the
// whole run (test/support/global-setup.ts; each suite creates its own database in it), so they
// get time. `npm test` runs both.
export default defineConfig({
  test: {
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 30_000,
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["client/**/*.test.ts", "server/**/*.test.ts", "agent/**/*.test.ts", "cli/**/*.test.ts"],
        },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/**/*.test.ts"],
          globalSetup: ["test/support/global-setup.ts"],
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
