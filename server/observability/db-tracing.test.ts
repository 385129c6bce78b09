import { context } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import {
  CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryResult,
} from "kysely";
import { afterAll, describe, expect, it } from "vitest";
import { summarize, tracedDialect } from "./db-tracing.js";
import { createTracing } from "./tracing.js";

const exporter = new InMemorySpanExporter();
const tracing = await createTracing({ otlpEndpoint: undefined, sampleRatio: 1, instanceId: "test", processors: [new SimpleSpanProcessor(exporter)] });

/** A driver whose one connection answers from `answer` and records what it ran. */
function fakeDialect(answer: (sql: string) => QueryResult<unknown>) {
  const ran: string[] = [];
  const conn: DatabaseConnection = {
    executeQuery: async <R>(q: CompiledQuery) => {
      ran.push(q.sql);
      return answer(q.sql) as QueryResult<R>;
    },
    streamQuery: async function* () {},
  };
  const driver: Driver = {
    init: async () => {},
    acquireConnection: async () => conn,
    beginTransaction: async (c) => void (await c.executeQuery(CompiledQuery.raw("begin"))),
    commitTransaction: async (c) => void (await c.executeQuery(CompiledQuery.raw("commit"))),
    rollbackTransaction: async () => {},
    releaseConnection: async (c) => expect(c).toBe(conn), // the inner connection comes back, not the wrapper
    destroy: async () => {},
  };
  const dialect: Dialect = {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => driver,
    createQueryCompiler: () => new PostgresQueryCompiler(),
    createIntrospector: (db) => new PostgresIntrospector(db),
  };
  return { dialect, ran };
}

describe("tracedDialect", () => {
  afterAll(async () => {
    await tracing?.shutdown();
    context.disable();
  });

  it("names statements by operation and table", () => {
    expect(summarize('select "id" from "agents" where "tenant_id" = $1')).toMatchObject({ operation: "SELECT", collection: "agents" });
    expect(summarize("insert into agent_commands (a) select 1")).toMatchObject({ operation: "INSERT", collection: "agent_commands" });
    expect(summarize('update "sessions" set x = $1')).toMatchObject({ operation: "UPDATE", collection: "sessions" });
    expect(summarize("with t as (select 1) insert into x select * from t")).toMatchObject({ operation: "WITH" });
    expect(summarize(`select ${"x".repeat(5000)}`).text?.length).toBeLessThanOrEqual(2001);
  });

  it("makes a CLIENT span per statement under the active span, and none outside one", async () => {
    if (!tracing) throw new Error("tracing did not start");
    exporter.reset();
    const { dialect, ran } = fakeDialect(() => ({ rows: [{ a: 1 }, { a: 2 }] }));
    const driver = tracedDialect(dialect, tracing.tracer).createDriver();
    const conn = await driver.acquireConnection();
    await conn.executeQuery(CompiledQuery.raw("select 1 from agents where id = $1", ["secret-value"]));
    expect(exporter.getFinishedSpans()).toHaveLength(0);
    await tracing.tracer.startActiveSpan("rpc", async (parent) => {
      await driver.beginTransaction(conn, {});
      await conn.executeQuery(CompiledQuery.raw("select 1 from agents where id = $1", ["secret-value"]));
      await driver.commitTransaction(conn);
      parent.end();
    });
    await driver.releaseConnection(conn);
    expect(ran).toHaveLength(4);
    const spans = exporter.getFinishedSpans();
    const rpc = spans.find((s) => s.name === "rpc");
    const children = spans.filter((s) => s.parentSpanContext?.spanId === rpc?.spanContext().spanId);
    expect(children.map((s) => s.name)).toEqual(["BEGIN", "SELECT agents", "COMMIT"]);
    const select = children[1];
    expect(select?.attributes).toMatchObject({
      "db.system.name": "postgresql",
      "db.operation.name": "SELECT",
      "db.collection.name": "agents",
      "db.response.returned_rows": 2,
    });
    // The text with placeholders, never the bound values.
    expect(JSON.stringify(spans.map((s) => s.attributes))).not.toContain("secret-value");
  });

  it("records a failed statement's SQLSTATE, not its message (which may quote a row)", async () => {
    if (!tracing) throw new Error("tracing did not start");
    exporter.reset();
    const { dialect } = fakeDialect(() => {
      throw Object.assign(new Error("duplicate key value violates unique constraint: Key (name)=(agwk_leaked) already exists"), { code: "23505" });
    });
    const conn = await tracedDialect(dialect, tracing.tracer).createDriver().acquireConnection();
    await tracing.tracer.startActiveSpan("rpc", async (parent) => {
      await expect(conn.executeQuery(CompiledQuery.raw("insert into api_keys (name) values ($1)", ["agwk_leaked"]))).rejects.toThrow("duplicate key");
      parent.end();
    });
    const failed = exporter.getFinishedSpans().find((s) => s.name === "INSERT api_keys");
    expect(failed?.attributes["db.response.status_code"]).toBe("23505");
    expect(failed?.status.code).toBe(2); // ERROR
    expect(JSON.stringify(exporter.getFinishedSpans().map((s) => [s.attributes, s.events, s.status]))).not.toContain("agwk_leaked");
  });
});
