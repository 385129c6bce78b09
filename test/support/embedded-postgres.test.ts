import { existsSync, readdirSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it, vi } from "vitest";
import { startEmbeddedPostgres } from "./embedded-postgres.js";
import * as ports from "./free-port.js";

vi.mock("./free-port.js", { spy: true });

const held: Server[] = [];
afterAll(() => {
  for (const server of held) server.close();
});

async function query(url: string, sql: string): Promise<Record<string, unknown> | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return (await client.query(sql)).rows[0] as Record<string, unknown> | undefined;
  } finally {
    await client.end();
  }
}

describe("embedded PostgreSQL for tests", () => {
  it("starts a UTF8 cluster on another port when the chosen one is taken meanwhile, and leaves nothing behind", async () => {
    const taken = createServer();
    held.push(taken);
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const takenPort = (taken.address() as { port: number }).port;
    vi.mocked(ports.freePort).mockResolvedValueOnce(takenPort);
    const prefix = `agw-pg-selftest-${process.pid}-`;

    const server = await startEmbeddedPostgres({ prefix });
    expect(vi.mocked(ports.freePort)).toHaveBeenCalledTimes(2);
    expect(new URL(server.adminUrl).port).not.toBe(String(takenPort));
    expect(await query(server.adminUrl, "SHOW server_encoding")).toEqual({ server_encoding: "UTF8" });
    expect(await query(server.adminUrl, "SHOW unix_socket_directories")).toEqual({ unix_socket_directories: "" });
    const dirs = readdirSync(tmpdir()).filter((name) => name.startsWith(prefix));
    expect(dirs).toHaveLength(1);

    await server.stop();
    expect(existsSync(join(tmpdir(), dirs[0] ?? "missing"))).toBe(false);
    await expect(query(server.adminUrl, "SELECT 1")).rejects.toThrow(/ECONNREFUSED/);
  });
});
