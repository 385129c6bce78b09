/**
 * What the observability layer costs per call, in one process, against a same-run baseline:
 * the same unary RPC (grpc.health.v1 Check: no database) through Connect's in-memory router
 * transport with
 *   - no interceptor (baseline),
 *   - the telemetry interceptor with tracing OFF (request id, log context, metrics — what every
 *     gateway runs),
 *   - the telemetry interceptor with tracing ON (a SERVER span per call continuing the caller's
 *     traceparent, batch processor, discarding exporter).
 * And for statements: a query through a Kysely driver as the gateway opens it with tracing off
 * (not wrapped: the baseline) and with tracing on, outside a traced call (wrapped, no span) and
 * inside one (a CLIENT span). Rounds interleave the modes; ns/call is the median of the rounds.
 *
 *   npx tsx bench/telemetry-overhead.ts      (BENCH_CALLS, BENCH_ROUNDS change the bounds)
 */
import { Writable } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { createClient, createRouterTransport, type Interceptor } from "@connectrpc/connect";
import { context, trace } from "@opentelemetry/api";
import { ExportResultCode } from "@opentelemetry/core";
import { BatchSpanProcessor, type ReadableSpan, type SpanExporter } from "@opentelemetry/sdk-trace-base";
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
import { pino } from "pino";
import { Health, HealthCheckResponse_ServingStatus, HealthCheckResponseSchema } from "../gen/grpc/health/v1/health_pb.js";
import { tracedDialect } from "../server/observability/db-tracing.js";
import { telemetryInterceptor } from "../server/observability/rpc-telemetry.js";
import { createTracing } from "../server/observability/tracing.js";
import { machineFacts, writeSection, commandLine } from "./lib/results.js";
import { fmt, table } from "./lib/stats.js";

const CALLS = Number(process.env.BENCH_CALLS ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/** Drops every span (the cost measured is the gateway's, not a collector's). */
class DiscardingExporter implements SpanExporter {
  export(_spans: ReadableSpan[], done: (r: { code: ExportResultCode }) => void): void {
    done({ code: ExportResultCode.SUCCESS });
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

const logger = pino({ level: "info" }, new Writable({ write: (_chunk, _encoding, done) => done() }));
const tracing = await createTracing({
  otlpEndpoint: undefined,
  sampleRatio: 1,
  instanceId: "bench",
  processors: [new BatchSpanProcessor(new DiscardingExporter(), { maxQueueSize: 100_000 })],
});
if (!tracing) throw new Error("tracing did not start");

function healthClient(interceptors: Interceptor[]) {
  const transport = createRouterTransport(
    (router) =>
      router.service(Health, {
        check: () => create(HealthCheckResponseSchema, { status: HealthCheckResponse_ServingStatus.SERVING }),
        list: () => ({ statuses: {} }),
        watch: async function* () {},
      }),
    { router: { interceptors } },
  );
  return createClient(Health, transport);
}

/** A connection that answers at once: only the wrapper's cost is left to measure. */
const instant: DatabaseConnection = {
  executeQuery: async <R>() => ({ rows: [] as R[] }) as QueryResult<R>,
  streamQuery: async function* () {},
};
const instantDriver: Driver = {
  init: async () => {},
  acquireConnection: async () => instant,
  beginTransaction: async () => {},
  commitTransaction: async () => {},
  rollbackTransaction: async () => {},
  releaseConnection: async () => {},
  destroy: async () => {},
};
const instantDialect: Dialect = {
  createAdapter: () => new PostgresAdapter(),
  createDriver: () => instantDriver,
  createQueryCompiler: () => new PostgresQueryCompiler(),
  createIntrospector: (db) => new PostgresIntrospector(db),
};

interface Mode {
  name: string;
  run(n: number): Promise<void>;
}

async function rpcMode(name: string, interceptors: Interceptor[], headers: Record<string, string> = {}): Promise<Mode> {
  const client = healthClient(interceptors);
  await client.check({ service: "" }, { headers });
  return {
    name,
    run: async (n) => {
      for (let i = 0; i < n; i++) await client.check({ service: "" }, { headers });
    },
  };
}

async function queryMode(name: string, dialect: Dialect, insideSpan: boolean): Promise<Mode> {
  const driver = dialect.createDriver();
  const conn = await driver.acquireConnection();
  const query = CompiledQuery.raw("select id, state from agents where tenant_id = $1 and id = $2", ["t", "a"]);
  const tracer = tracing?.tracer;
  return {
    name,
    run: async (n) => {
      const loop = async () => {
        for (let i = 0; i < n; i++) await conn.executeQuery(query);
      };
      if (insideSpan && tracer)
        await tracer.startActiveSpan("call", async (span) => {
          await loop();
          span.end();
        });
      else await loop();
    },
  };
}

async function main(): Promise<void> {
  const rpc = [
    await rpcMode("RPC, no interceptor (baseline)", []),
    await rpcMode("RPC, telemetry with tracing off (metrics, request id, log context)", [telemetryInterceptor(undefined, logger)]),
    await rpcMode("RPC, telemetry with tracing on (span per call, caller's traceparent)", [telemetryInterceptor(tracing?.tracer, logger)], {
      traceparent: TRACEPARENT,
    }),
  ];
  const queries = [
    await queryMode("query, tracing off: driver not wrapped (baseline)", instantDialect, false),
    await queryMode(
      "query, tracing on, outside a traced call (wrapped, no span)",
      tracedDialect(instantDialect, tracing?.tracer ?? trace.getTracer("x")),
      false,
    ),
    await queryMode("query, tracing on, inside a traced call (CLIENT span)", tracedDialect(instantDialect, tracing?.tracer ?? trace.getTracer("x")), true),
  ];
  const all = [...rpc, ...queries];
  const perCall = new Map<string, number[]>(all.map((m) => [m.name, []]));
  for (const m of all) await m.run(Math.min(2000, CALLS)); // warm-up (JIT)
  for (let round = 0; round < ROUNDS; round++) {
    for (const m of all) {
      const t0 = process.hrtime.bigint();
      await m.run(CALLS);
      const ns = Number(process.hrtime.bigint() - t0) / CALLS;
      perCall.get(m.name)?.push(ns);
      await tracing?.flush();
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
  const rows = (group: Mode[]) => {
    const base = median(perCall.get(group[0]?.name ?? "") ?? []);
    return group.map((m) => {
      const xs = perCall.get(m.name) ?? [];
      const med = median(xs);
      return [
        m.name,
        fmt(med / 1000, 2),
        `${fmt(Math.min(...xs) / 1000, 2)}–${fmt(Math.max(...xs) / 1000, 2)}`,
        m === group[0] ? "–" : `${med >= base ? "+" : "−"}${fmt(Math.abs(med - base) / 1000, 2)}`,
      ];
    });
  };
  const header = ["mode", "µs / call (median)", "min–max", "over baseline (µs)"];
  const result = [
    `### Run ${new Date().toISOString()}`,
    "",
    machineFacts({ calls: `${CALLS} per mode per round, ${ROUNDS} rounds, interleaved` }),
    "",
    table(header, rows(rpc)),
    "",
    table(header, rows(queries)),
    "",
    `Run: \`${commandLine()}\``,
  ].join("\n");
  console.log(result);
  writeSection(
    "## Telemetry overhead",
    [
      "Per-call cost of the observability layer, in one process, no network and no database, so only its own work is left:",
      "a unary RPC through Connect's in-memory router transport without and with the telemetry interceptor (tracing off and on),",
      "and a statement through a Kysely driver that answers at once, as the gateway opens it with tracing off (not wrapped) and on.",
      "With tracing off the gateway creates no tracer provider, creates no spans, parses no `traceparent` and does not wrap the",
      "database driver, so the tracing-off rows are the whole price of metrics, request ids and log context. `bench/telemetry-overhead.ts`.",
    ].join("\n"),
    result,
  );
  await tracing?.shutdown();
  context.disable();
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
