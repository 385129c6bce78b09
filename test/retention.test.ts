// Retention (issue 15, item 5): telemetry, events, acknowledged commands and expired sessions and
// challenges older than their ages are deleted in bounded batches by one replica at a time;
// audit records never are. Real gateway on real PostgreSQL; the periodic sweep is parked and the
// test runs sweeps itself, with rows backdated by SQL.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deleteTelemetryReceivedBefore } from "../server/ingest/ingest-store.js";
import { RETENTION_LOCK_KEY, RetentionSweeper } from "../server/workers/retention.js";
import { enrollAgent } from "./support/agents.js";
import { startTestGateway, type TestGateway } from "./support/gateway.js";

let gw: TestGateway;
let sql: pg.Client;
let tenantId: string;
let agentA: string;
let agentB: string;

const count = async (text: string, values: unknown[] = []) => Number((await sql.query<{ n: string }>(text, values)).rows[0]?.n);

/** Old and new rows in every swept table, for agent A (and B's live session). */
async function seed(prefix: string): Promise<void> {
  const old = "now() - interval '2 days'";
  const recent = "now() - interval '1 hour'";
  for (const [n, at, tag] of [[10, old, "old"], [2, recent, "new"]] as const) {
    await sql.query(
      `INSERT INTO telemetry_points (tenant_id, agent_id, point_id, name, value, observed_at, received_at)
       SELECT $1, $2, $3 || '-${tag}-' || i, 'cpu', i, ${at}, ${at} FROM generate_series(1, ${n}) AS i`,
      [tenantId, agentA, prefix],
    );
    await sql.query(
      `INSERT INTO agent_events (tenant_id, agent_id, event_id, type, severity, occurred_at, received_at)
       SELECT $1, $2, $3 || '-${tag}-' || i, 'boot', 1, ${at}, ${at} FROM generate_series(1, ${n}) AS i`,
      [tenantId, agentA, prefix],
    );
  }
  // Commands: 7 acked long ago, 1 acked recently, 2 never acked (however old: they wait).
  const base = Number((await sql.query<{ s: string }>("SELECT coalesce(max(sequence), 0) AS s FROM agent_commands WHERE agent_id = $1", [agentA])).rows[0]?.s);
  const commands: Array<[string, string | null]> = [
    ...Array.from({ length: 7 }, (): [string, string | null] => [old, old]),
    [old, recent],
    [old, null],
    [old, null],
  ];
  for (const [i, [created, acked]] of commands.entries()) {
    await sql.query(
      `INSERT INTO agent_commands (agent_id, sequence, tenant_id, command_id, kind, body, created_at, acked_at, ack_status)
       VALUES ($1, $2, $3, gen_random_uuid(), 'test', '\\x00', ${created}, ${acked ?? "NULL"}, ${acked ? "'OK'" : "NULL"})`,
      [agentA, base + i + 1, tenantId],
    );
  }
  // Challenges: 5 expired two hours ago, 1 expired a minute ago (younger than the age), 1 live.
  await sql.query(
    `INSERT INTO auth_challenges (id, tenant_id, agent_id, nonce, expires_at)
     SELECT gen_random_uuid(), $1::uuid, $2::uuid, '\\x01'::bytea, now() - interval '2 hours' FROM generate_series(1, 5)
     UNION ALL SELECT gen_random_uuid(), $1, $2, '\\x01', now() - interval '1 minute'
     UNION ALL SELECT gen_random_uuid(), $1, $2, '\\x01', now() + interval '30 seconds'`,
    [tenantId, agentA],
  );
  // Records of answered challenges (used_challenges): the same ages.
  await sql.query(
    `INSERT INTO used_challenges (id, tenant_id, agent_id, expires_at)
     SELECT gen_random_uuid(), $1::uuid, $2::uuid, now() - interval '2 hours' FROM generate_series(1, 5)
     UNION ALL SELECT gen_random_uuid(), $1, $2, now() - interval '1 minute'
     UNION ALL SELECT gen_random_uuid(), $1, $2, now() + interval '30 seconds'`,
    [tenantId, agentA],
  );
  // A's session expired two hours ago; B's is live.
  await sql.query("UPDATE sessions SET expires_at = now() - interval '2 hours' WHERE agent_id = $1", [agentA]);
}

async function snapshot() {
  return {
    telemetry: await count("SELECT count(*) AS n FROM telemetry_points"),
    events: await count("SELECT count(*) AS n FROM agent_events"),
    ackedCommands: await count("SELECT count(*) AS n FROM agent_commands WHERE acked_at IS NOT NULL"),
    unackedCommands: await count("SELECT count(*) AS n FROM agent_commands WHERE acked_at IS NULL"),
    challenges: await count("SELECT count(*) AS n FROM auth_challenges"),
    usedChallenges: await count("SELECT count(*) AS n FROM used_challenges"),
    sessions: await count("SELECT count(*) AS n FROM sessions"),
    audit: await count("SELECT count(*) AS n FROM audit_events"),
  };
}

beforeAll(async () => {
  gw = await startTestGateway({
    retentionInterval: "1h",
    retentionTelemetry: "1d",
    retentionEvents: "1d",
    retentionCommands: "1d",
    retentionSessions: "1h",
    retentionBatchSize: "3",
    retentionBatchPause: "0",
  });
  sql = new pg.Client({ connectionString: gw.database.url });
  await sql.connect();
  agentA = (await enrollAgent(gw, "retained-a")).registration.agentId;
  agentB = (await enrollAgent(gw, "retained-b")).registration.agentId;
  tenantId = (await sql.query<{ tenant_id: string }>("SELECT tenant_id FROM agents WHERE id = $1", [agentA])).rows[0]?.tenant_id ?? "";
  // Every audit record is made ancient: age alone must never delete one.
  await sql.query("UPDATE audit_events SET created_at = now() - interval '400 days'");
});

afterAll(async () => {
  await sql?.end();
  await gw?.stop();
});

describe("retention", () => {
  it("deletes what is past its age in batches of at most the batch size, keeps newer rows, unacked commands and every audit record", async () => {
    await seed("a");
    const before = await snapshot();
    expect(before.audit).toBeGreaterThan(0);
    const report = await gw.gateway.context.retention.sweep();
    expect(report).toMatchObject({ skipped: false, aborted: false });
    // Rows per DELETE statement: never more than the batch size (3).
    expect(report.tables).toEqual({
      telemetry_points: [3, 3, 3, 1],
      agent_events: [3, 3, 3, 1],
      agent_commands: [3, 3, 1],
      sessions: [1],
      used_challenges: [3, 2],
      auth_challenges: [3, 2],
    });
    expect(await snapshot()).toEqual({
      telemetry: before.telemetry - 10,
      events: before.events - 10,
      ackedCommands: before.ackedCommands - 7,
      unackedCommands: before.unackedCommands,
      challenges: before.challenges - 5,
      usedChallenges: before.usedChallenges - 5,
      sessions: before.sessions - 1,
      audit: before.audit,
    });
    expect(await count("SELECT count(*) AS n FROM sessions WHERE agent_id = $1", [agentB])).toBe(1);
    expect(await count("SELECT count(*) AS n FROM telemetry_points WHERE received_at < now() - interval '1 day'")).toBe(0);
    // A second sweep finds nothing left.
    const again = await gw.gateway.context.retention.sweep();
    expect(Object.values(again.tables).flat().every((n) => n === 0)).toBe(true);
  });

  it("one statement deletes at most its limit", async () => {
    await seed("b");
    const deleted = await deleteTelemetryReceivedBefore(gw.gateway.context.database.db, new Date(Date.now() - 86_400_000), 4);
    expect(deleted).toBe(4);
    expect(await count("SELECT count(*) AS n FROM telemetry_points WHERE received_at < now() - interval '1 day'")).toBe(6);
    await gw.gateway.context.retention.sweep();
  });

  it("skips the sweep while another replica holds the retention lock, and sweeps once it is released", async () => {
    await seed("c");
    const other = new pg.Client({ connectionString: gw.database.url });
    await other.connect();
    try {
      await other.query("SELECT pg_advisory_lock($1::bigint)", [RETENTION_LOCK_KEY]);
      const before = await snapshot();
      expect(await gw.gateway.context.retention.sweep()).toEqual({ skipped: true, aborted: false, tables: {} });
      expect(await snapshot()).toEqual(before);
      await other.query("SELECT pg_advisory_unlock($1::bigint)", [RETENTION_LOCK_KEY]);
      const report = await gw.gateway.context.retention.sweep();
      expect(report.skipped).toBe(false);
      expect(report.tables.telemetry_points?.reduce((a, b) => a + b, 0)).toBe(10);
    } finally {
      await other.end();
    }
  });

  it("stops cleanly in the middle of a sweep: the pause is cut short, no batch runs after stop(), the lock is released", async () => {
    await seed("d");
    // A pause far longer than the test's timeout: only an aborted pause lets stop() return.
    const sweeper = new RetentionSweeper(gw.gateway.context.database, { ...gw.gateway.context.config.retention, batchSize: 2, batchPauseMs: 3_600_000 });
    sweeper.start();
    const running = sweeper.sweep();
    await expect.poll(() => count("SELECT count(*) AS n FROM telemetry_points WHERE received_at < now() - interval '1 day'"), { timeout: 10_000, interval: 50 }).toBe(8);
    await sweeper.stop();
    const report = await running;
    expect(report).toMatchObject({ skipped: false, aborted: true, tables: { telemetry_points: [2] } });
    expect(await count("SELECT count(*) AS n FROM telemetry_points WHERE received_at < now() - interval '1 day'")).toBe(8);
    expect(await count("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND ((classid::bigint << 32) | objid::bigint) = $1::bigint", [RETENTION_LOCK_KEY])).toBe(0);
    // Stopped means stopped: a later sweep call does nothing.
    expect((await sweeper.sweep()).aborted).toBe(true);
    await gw.gateway.context.retention.sweep();
  });
});
